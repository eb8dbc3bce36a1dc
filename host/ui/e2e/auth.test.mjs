// Scenario 17: a server started with an auth token. The UI asks for the token once (a wrong one is refused with
// the server's message); after that streams, the live list and downloads work from the cookie — and a write the
// cookie alone authorizes must come from this server's own pages.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { page, start, stop } from './harness.mjs';

const TOKEN = 'ui-test-token-0123456789';
let server, b;
before(async () => ({ server, b } = await start({ token: TOKEN })));
after(() => stop({ server, b }));

test('the token is asked once; then everything works from the cookie', async () => {
  const s = await server.session('demo.yaml', { title: 'Guarded by a token' });
  const p = await page(b);
  await p.goto(`${server.url}/c/${s.id}`);
  await p.getByRole('heading', { name: 'This server needs its token' }).waitFor();
  await p.getByLabel('Auth token').fill('wrong');
  await p.getByRole('button', { name: 'Continue' }).click();
  await p.getByRole('alert').getByText("that is not this server's auth token").waitFor();
  await p.getByLabel('Auth token').fill(TOKEN);
  await p.getByRole('button', { name: 'Continue' }).click();
  await p.getByRole('heading', { name: 'Guarded by a token' }).waitFor();
  // The stream (EventSource: no header) works: a message streams in.
  await p.getByLabel('Message', { exact: true }).fill('go');
  await p.getByLabel('Message', { exact: true }).press('Enter');
  await p.locator('.message.assistant', { hasText: 'I listed the files' }).waitFor();
  // The live list (also an EventSource) shows the session.
  await p.locator(`[data-session-id="${s.id}"]`).waitFor();
  // The cookie is HttpOnly: the page's script cannot read it.
  assert.equal(await p.evaluate(() => document.cookie), '');
  const cookies = await p.context().cookies();
  const cookie = cookies.find((c) => c.name === 'omnigent_token');
  assert.ok(cookie.httpOnly);
  assert.equal(cookie.sameSite, 'Strict');
  // A reload needs no token again.
  await p.reload();
  await p.getByRole('heading', { name: 'Guarded by a token' }).waitFor();
  await p.context().close();
});

test('without the token nothing is served but the page itself; a cookie write from elsewhere is refused', async () => {
  const bare = await fetch(server.url + '/v1/sessions');
  assert.equal(bare.status, 401);
  const stream = await fetch(server.url + '/v1/sessions/feed');
  assert.equal(stream.status, 401);
  const index = await fetch(server.url + '/');
  assert.equal(index.status, 200, 'the app itself is public: it holds no data');
  const cookie = `omnigent_token=${TOKEN}`;
  const ok = await fetch(server.url + '/v1/sessions', { headers: { cookie } });
  assert.equal(ok.status, 200, 'a read with the cookie');
  const foreign = await fetch(server.url + '/v1/sessions', {
    method: 'POST',
    headers: { cookie, origin: 'http://evil.example', 'content-type': 'application/json' },
    body: '{}',
  });
  assert.equal(foreign.status, 403);
  assert.equal((await foreign.json()).error.code, 'forbidden');
  const noOrigin = await fetch(server.url + '/v1/sessions', {
    method: 'POST',
    headers: { cookie, 'content-type': 'application/json' },
    body: '{}',
  });
  assert.equal(noOrigin.status, 403, 'a write on the cookie alone must say where it comes from');
  const bearer = await fetch(server.url + '/v1/sessions', {
    method: 'POST',
    headers: { authorization: `Bearer ${TOKEN}`, origin: 'http://evil.example', 'content-type': 'application/json' },
    body: JSON.stringify({ config_yaml: 'name: x\nexecutor: {harness: agent, provider: scripted, script: [{text: hi}]}\n' }),
  });
  assert.equal(bearer.status, 201, 'a bearer token is not a cookie: no Origin rule');
});
