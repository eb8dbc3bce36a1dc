// Scenario 14, run by tests/natives.rs (it needs the Claude Code CLI in a session's tmux terminal and the mock
// LLM): the Terminals tab attaches xterm.js over the terminal WebSocket; keystrokes reach the CLI, a smaller window
// resizes the terminal, a read-only attach sends nothing, and closing the terminal removes it.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { browser, page, sleep } from './harness.mjs';

const URL = process.env.OMNIGENT_URL;
const SESSION = process.env.OMNIGENT_SESSION;
let b;
before(async () => {
  b = await browser();
});
after(async () => {
  await b?.close();
});

async function screen(tid) {
  const r = await fetch(`${URL}/v1/sessions/${SESSION}/resources/terminals/${tid}/screen`);
  return (await r.json()).text ?? '';
}

async function until(what, check) {
  for (let i = 0; i < 150; i++) {
    const value = await check();
    if (value) return value;
    await sleep(100);
  }
  throw new Error(`never: ${what}`);
}

test('attach, type, resize, watch read-only, close', async () => {
  const p = await page(b);
  await p.goto(`${URL}/c/${SESSION}`);
  await p.getByRole('tab', { name: 'Terminals' }).click();
  const row = p.locator('[data-terminal-id]').first();
  await row.waitFor();
  const tid = await row.getAttribute('data-terminal-id');
  await row.getByRole('button', { name: 'Attach' }).click();
  await p.getByRole('status').getByText('attached').waitFor();
  // The current screen arrives first: xterm shows what tmux shows.
  await until('the screen in xterm', async () => (await p.locator('.xterm-rows').innerText()).trim().length > 0);

  // Typing reaches the CLI's input line.
  await p.locator('.xterm-host').click();
  await p.keyboard.type('hello-from-the-browser');
  await until('the keys on the CLI screen', async () => (await screen(tid)).includes('hello-from-the-browser'));
  await until('the echo in xterm', async () => (await p.locator('.xterm-rows').innerText()).includes('hello-from-the-browser'));

  // The terminal takes the size of its panel, and follows a window change (the CLI redraws its full-width rules).
  const widest = async () => Math.max(...(await screen(tid)).split('\n').map((l) => l.trimEnd().length));
  const before = await p.evaluate(() => window.omnigentTerminal.cols);
  await until(`tmux at ${before} columns`, async () => (await widest()) <= before);
  await p.setViewportSize({ width: 860, height: 700 }); // one column: the panel gets the whole width
  const after = await until('xterm at a new width', async () => {
    const c = await p.evaluate(() => window.omnigentTerminal.cols);
    return c !== before ? c : null;
  });
  assert.ok(after > before, `${after} > ${before}`);
  await until(`tmux at ${after} columns`, async () => {
    const w = await widest();
    return w > before && w <= after;
  });

  // Read-only: keys go nowhere.
  await row.getByRole('button', { name: 'Watch (read-only)' }).click();
  await p.getByRole('status').getByText('watching (read-only)').waitFor();
  await p.locator('.xterm-host').click();
  await p.keyboard.type('zzz-should-not-arrive');
  await sleep(1000);
  assert.ok(!(await screen(tid)).includes('zzz-should-not-arrive'));

  // Close: the terminal leaves the list.
  await row.getByRole('button', { name: 'Close terminal' }).click();
  await row.waitFor({ state: 'detached' });
  await p.context().close();
});
