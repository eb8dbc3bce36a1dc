// The web UI's benchmark (a table, not a test): how long a 2,000-item session takes from navigation to its whole
// transcript on screen, how long a streamed delta takes from arriving in the page to being drawn, and what the
// page downloads (gzipped). Against the real binary and Chromium, offline.
//
//   cd host/ui && OMNIGENT_BIN=../../target/release/omnigent npm run bench
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';

import { Server, browser, page } from '../e2e/harness.mjs';

const ROUNDS = Number(process.env.ROUNDS ?? 5);
const pct = (xs, p) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))];
const rows = [];

const server = new Server();
await server.start();
const b = await browser();
try {
  // 1. A 2,000-item transcript (a conversation imported as history: no turn runs).
  const items = [];
  for (let i = 0; i < 1000; i++) {
    items.push({ type: 'message', data: { role: 'user', content: `Question ${i}: what about part ${i}?` } });
    items.push({
      type: 'message',
      data: { role: 'assistant', content: [{ type: 'output_text', text: `Answer ${i}: **part ${i}** is fine.\n\n- one\n- two` }] },
    });
  }
  const big = await server.api('POST', '/v1/sessions', {
    title: 'Big',
    config_yaml: 'name: big\nexecutor: {harness: agent, provider: scripted, script: [{text: hi}]}\n',
    initial_items: items,
  });
  const times = [];
  const all = [];
  for (let r = 0; r < ROUNDS; r++) {
    const p = await page(b);
    const start = Date.now();
    await p.goto(`${server.url}/c/${big.id}`);
    await p.locator('.message.assistant', { hasText: 'Answer 999:' }).waitFor({ timeout: 60_000 });
    times.push(Date.now() - start);
    const t = Date.now();
    await p.getByRole('button', { name: /Show earlier messages/ }).click();
    await p.waitForFunction(() => document.querySelectorAll('[data-item-id]').length >= 2000, null, { timeout: 60_000 });
    all.push(Date.now() - t);
    await p.context().close();
  }
  rows.push(['2,000-item session: navigation → newest 200 on screen', `${pct(times, 50)} ms`, `p90 ${pct(times, 90)} ms`, '']);
  rows.push(['  then "Show earlier" → all 2,000 in the DOM', `${pct(all, 50)} ms`, `p90 ${pct(all, 90)} ms`, '']);

  // 2. Delta → glyph while streaming: a slow scripted reply; the page records when each delta arrives (its own
  // EventSource, beside the app's) and when the streamed text on screen first contains it.
  const words = Array.from({ length: 120 }, (_, i) => `w${i}`).join(' ');
  const slow = await server.api('POST', '/v1/sessions', {
    title: 'Slow',
    config_yaml: `name: slow\nexecutor: {harness: agent, provider: scripted, script: [{delay_ms: 25, text: "${words}"}]}\n`,
  });
  const p = await page(b);
  await p.goto(`${server.url}/c/${slow.id}`);
  await p.getByRole('heading', { name: 'Slow' }).waitFor();
  await p.evaluate((id) => {
    window.arrivals = [];
    window.drawn = [];
    let text = '';
    const source = new EventSource(`/v1/sessions/${id}/stream`);
    source.addEventListener('response.output_text.delta', (e) => {
      text += JSON.parse(e.data).delta;
      window.arrivals.push({ at: performance.now(), length: text.length });
    });
    new MutationObserver(() => {
      const el = document.querySelector('.message.streaming .markdown');
      if (el) window.drawn.push({ at: performance.now(), length: el.textContent.length });
    }).observe(document.body, { subtree: true, childList: true, characterData: true });
  }, slow.id);
  await new Promise((r) => setTimeout(r, 300));
  await server.api('POST', `/v1/sessions/${slow.id}/events`, { type: 'message', data: { role: 'user', content: 'go' } });
  await p.locator('[data-status="idle"]').waitFor({ timeout: 60_000 });
  const { arrivals, drawn } = await p.evaluate(() => ({ arrivals: window.arrivals, drawn: window.drawn }));
  const lags = [];
  for (const a of arrivals) {
    // The markdown trims the trailing space: a delta is drawn once the screen holds its text minus that.
    const d = drawn.find((x) => x.at >= a.at && x.length >= a.length - 1);
    if (d) lags.push(d.at - a.at);
  }
  rows.push(['delta → glyph on screen while streaming', `${pct(lags, 50).toFixed(1)} ms`, `p90 ${pct(lags, 90).toFixed(1)} ms`, `${lags.length}/${arrivals.length} deltas`]);
  await p.context().close();
} finally {
  await b.close();
  await server.cleanup();
}

// 3. What a first visit downloads.
const dist = new URL('../dist/', import.meta.url).pathname;
const html = readFileSync(join(dist, 'index.html'), 'utf8');
const entry = [...html.matchAll(/\/assets\/([^"]+)/g)].map((m) => m[1]);
const gz = (name) => gzipSync(readFileSync(join(dist, 'assets', name))).length / 1024;
const main = entry.reduce((sum, name) => sum + gz(name), 0);
rows.push(['main bundle (JS + CSS), gzipped', `${main.toFixed(1)} KB`, 'target < 150 KB', main < 150 ? 'holds' : 'MISSED']);
const lazy = readdirSync(join(dist, 'assets')).filter((n) => !entry.includes(n));
rows.push(['terminal chunks (loaded when a terminal opens), gzipped', `${lazy.reduce((s, n) => s + gz(n), 0).toFixed(1)} KB`, '', lazy.join(', ')]);

const width = [Math.max(...rows.map((r) => r[0].length)), 12, 16];
console.log(`\nweb UI (${ROUNDS} rounds; chromium-headless-shell)\n`);
for (const [what, value, extra, note] of rows) {
  console.log(`${what.padEnd(width[0])}  ${value.padStart(width[1])}  ${extra.padEnd(width[2])}  ${note}`);
}
