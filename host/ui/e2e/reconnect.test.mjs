// Scenarios 15 and 16: a server SIGKILLed mid-stream and restarted on the same port, or a tab that went offline —
// the page reconnects with Last-Event-ID and shows every item exactly once; a session deleted elsewhere says so and
// the page stops (no reconnect loop).
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { page, sleep, start, stop } from './harness.mjs';

let server, b;
before(async () => ({ server, b } = await start()));
after(() => stop({ server, b }));

const LONG = (y) =>
  y.replace(
    '- text: "Let me look around. "',
    '- delay_ms: 60\n      text: "Let me look around this directory carefully, word by word, so that the stream runs long enough. "',
  );

const itemIds = (p) => p.locator('[data-item-id]').evaluateAll((nodes) => nodes.map((n) => n.dataset.itemId));

test('SIGKILL mid-stream and restart: every item exactly once', async () => {
  const s = await server.session('demo.yaml', { title: 'Crash', change: LONG });
  const p = await page(b);
  await p.goto(`${server.url}/c/${s.id}`);
  await p.getByLabel('Message', { exact: true }).fill('go');
  await p.getByLabel('Message', { exact: true }).press('Enter');
  await p.locator('.message.streaming').waitFor();
  await server.kill();
  await sleep(300);
  await server.start();
  // The interrupted turn resumes from its journal; the page catches up by itself.
  await p.locator('.message.assistant', { hasText: 'I listed the files' }).waitFor({ timeout: 30_000 });
  await p.locator('[data-status="idle"]').waitFor();
  const ids = await itemIds(p);
  assert.equal(new Set(ids).size, ids.length, `no item twice: ${ids}`);
  // The same as a fresh load of the page.
  const fresh = await page(b);
  await fresh.goto(`${server.url}/c/${s.id}`);
  await fresh.locator('.message.assistant', { hasText: 'I listed the files' }).waitFor();
  assert.deepEqual(ids, await itemIds(fresh));
  await p.context().close();
  await fresh.context().close();
});

test('offline and back: the items missed arrive once', async () => {
  const s = await server.session('demo.yaml', { title: 'Offline', change: LONG });
  const p = await page(b);
  await p.goto(`${server.url}/c/${s.id}`);
  await p.getByRole('heading', { name: 'Offline' }).waitFor();
  await p.context().setOffline(true);
  await server.api('POST', `/v1/sessions/${s.id}/events`, { type: 'message', data: { role: 'user', content: 'go' } });
  await sleep(1500);
  await p.context().setOffline(false);
  await p.locator('.message.assistant', { hasText: 'I listed the files' }).waitFor({ timeout: 30_000 });
  const ids = await itemIds(p);
  assert.equal(new Set(ids).size, ids.length, `no item twice: ${ids}`);
  await p.context().close();
});

test('a session deleted elsewhere says so and stops', async () => {
  const s = await server.session('demo.yaml', { title: 'Doomed' });
  const p = await page(b);
  const streams = [];
  p.on('request', (r) => r.url().includes(`/v1/sessions/${s.id}/stream`) && streams.push(r.url()));
  await p.goto(`${server.url}/c/${s.id}`);
  await p.getByRole('heading', { name: 'Doomed' }).waitFor();
  await server.api('DELETE', `/v1/sessions/${s.id}`);
  await p.getByRole('heading', { name: 'Session deleted' }).waitFor();
  await p.locator(`[data-session-id="${s.id}"]`).waitFor({ state: 'detached' });
  const seen = streams.length;
  await sleep(3000);
  assert.ok(streams.length <= seen + 1, `no reconnect loop: ${streams.length - seen} more stream requests`);
  await p.context().close();
});
