// Scenario 1: the UI is served by the binary — the page, immutable hashed assets, deep links that survive a
// refresh — and the API's unknown paths keep their JSON 404.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { page, start, stop } from './harness.mjs';

let server, b;
before(async () => ({ server, b } = await start()));
after(() => stop({ server, b }));

test('the page, its assets and the API 404', async () => {
  const index = await fetch(server.url + '/');
  assert.equal(index.status, 200);
  assert.match(index.headers.get('content-type'), /text\/html/);
  assert.equal(index.headers.get('cache-control'), 'no-cache');
  assert.match(index.headers.get('content-security-policy'), /script-src 'self'/);
  const html = await index.text();
  const script = /src="(\/assets\/main-[^"]+\.js)"/.exec(html)[1];
  const asset = await fetch(server.url + script);
  assert.equal(asset.status, 200);
  assert.match(asset.headers.get('cache-control'), /immutable/);
  assert.match(asset.headers.get('content-type'), /javascript/);

  const missing = await fetch(server.url + '/v1/nothing-here');
  assert.equal(missing.status, 404);
  assert.equal((await missing.json()).error.code, 'not_found');
  const deep = await fetch(server.url + '/c/conv_0123');
  assert.equal(deep.status, 200, 'a deep link is the app');
  assert.match(await deep.text(), /<div id="app">/);
});

test('a deep link to a session survives a refresh', async () => {
  const s = await server.session('demo.yaml', { title: 'Deep link' });
  const errors = [];
  const p = await page(b, { errors });
  await p.goto(`${server.url}/c/${s.id}`);
  await p.getByRole('heading', { name: 'Deep link' }).waitFor();
  await p.reload();
  await p.getByRole('heading', { name: 'Deep link' }).waitFor();
  // The sidebar lists it (from the live feed).
  await p.locator(`[data-session-id="${s.id}"]`).waitFor();
  assert.deepEqual(errors, []);
  await p.context().close();
});
