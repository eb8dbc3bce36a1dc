// Scenarios 2–4, 8, 9, 18: start a session from the UI, watch it stream, tool calls folded, markdown rendered and
// sanitized, interrupt, steer — keyboard only where a keyboard user would be.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { page, start, stop } from './harness.mjs';

let server, b;
before(async () => ({ server, b } = await start()));
after(() => stop({ server, b }));

const SLOW_MARKDOWN = `name: slow
prompt: You write markdown.
executor:
  harness: agent
  provider: scripted
  script:
    - delay_ms: 40
      text: "# Report\\n\\nHere is code:\\n\\n\`\`\`rust\\nfn main() {}\\n\`\`\`\\n\\n| a | b |\\n|---|---|\\n| 1 | 2 |\\n\\n<img src=x onerror=\\"window.pwned=1\\"> <script>window.pwned=2</script> done and done and done and done"
    - text: "Second answer."
`;

test('start a session from the UI with a pasted config; it streams, renders markdown safely, lists itself', async () => {
  const errors = [];
  const p = await page(b, { errors });
  await p.goto(server.url + '/');
  await p.getByRole('heading', { name: 'What should we build?' }).waitFor();
  await p.getByRole('textbox', { name: 'Session config' }).fill(SLOW_MARKDOWN);
  await p.getByLabel('First message').fill('Write the report');
  await p.getByRole('button', { name: 'Start session' }).click();
  await p.waitForURL(/\/c\/conv_[0-9a-f]{32}$/);
  const id = p.url().split('/c/')[1];
  await p.locator('.message.user', { hasText: 'Write the report' }).waitFor();
  // Mid-stream: part of the text is on screen and the turn can be interrupted.
  await p.locator('.message.streaming').waitFor();
  await p.getByRole('button', { name: 'Interrupt' }).waitFor();
  const partial = await p.locator('.message.streaming').innerText();
  assert.ok(!partial.includes('done and done and done and done'), `still streaming: ${partial}`);
  // The end: one assistant message with a heading, a code block with copy, a table; the image's handler and the
  // script never ran.
  await p.locator('[data-status="idle"]').waitFor({ timeout: 30_000 });
  const reply = p.locator('.message.assistant[data-item-id]');
  assert.equal(await reply.count(), 1);
  await reply.getByRole('heading', { name: 'Report' }).waitFor();
  assert.equal(await reply.locator('pre code').innerText(), 'fn main() {}\n');
  await reply.getByRole('button', { name: 'Copy code' }).waitFor();
  assert.equal(await reply.locator('table td').first().innerText(), '1');
  assert.equal(await reply.locator('script').count(), 0);
  assert.equal(await p.evaluate(() => window.pwned), undefined, 'model output ran no script');
  assert.equal(await p.getByRole('button', { name: 'Interrupt' }).count(), 0);
  // The sidebar has it, by its agent's name (no title), live.
  await p.locator(`[data-session-id="${id}"]`, { hasText: 'slow' }).waitFor();
  assert.deepEqual(errors, []);
  await p.context().close();
});

test('tool calls fold into one group that opens to arguments and output', async () => {
  const s = await server.session('demo.yaml', { title: 'Tools' });
  const p = await page(b);
  await p.goto(`${server.url}/c/${s.id}`);
  await p.getByLabel('Message', { exact: true }).fill('look around');
  await p.getByLabel('Message', { exact: true }).press('Enter');
  await p.locator('.message.assistant', { hasText: 'I listed the files' }).waitFor();
  const group = p.locator('details.tool-work');
  assert.equal(await group.count(), 1);
  assert.equal(await group.getAttribute('open'), null, 'folded');
  await group.locator('summary').first().click();
  await group.locator('details.tool-call summary', { hasText: 'shell ls' }).click();
  await group.getByText('"command": "ls"').waitFor();
  await group.getByText('exit code: 0').waitFor();
  await p.context().close();
});

test('interrupt a running turn', async () => {
  const s = await server.session('demo.yaml', {
    title: 'Interrupt me',
    change: (y) => y.replace('- text: "Let me look around. "', '- delay_ms: 300\n      text: "Let me look around slowly, one word at a time, for a long while. "'),
  });
  const p = await page(b);
  await p.goto(`${server.url}/c/${s.id}`);
  await p.getByLabel('Message', { exact: true }).fill('go');
  await p.getByRole('button', { name: 'Send' }).click();
  await p.getByRole('button', { name: 'Interrupt' }).click();
  await p.locator('.notice', { hasText: 'Interrupted' }).waitFor();
  await p.locator('[data-status="idle"]').waitFor();
  assert.equal(await p.getByRole('button', { name: 'Interrupt' }).count(), 0);
  await p.context().close();
});

test('a message sent during a turn shows as queued, then is taken', async () => {
  const s = await server.session('demo.yaml', {
    title: 'Steer',
    change: (y) => y.replace('- text: "Let me look around. "', '- delay_ms: 100\n      text: "Let me look around a bit more slowly than usual. "'),
  });
  const p = await page(b);
  await p.goto(`${server.url}/c/${s.id}`);
  const box = p.getByLabel('Message', { exact: true });
  await box.fill('first');
  await box.press('Enter');
  await p.getByRole('button', { name: 'Interrupt' }).waitFor();
  await box.fill('and also this');
  await box.press('Enter');
  // Either still queued or already consumed; in the end it is in the transcript once, as the user's.
  await p.locator('.message.user', { hasText: 'and also this' }).waitFor({ timeout: 30_000 });
  assert.equal(await p.locator('.message.user', { hasText: 'and also this' }).count(), 1);
  await p.locator('.queued').waitFor({ state: 'detached' });
  await p.context().close();
});

test('keyboard only: tab to the message box, Enter sends, tab to Approve, Space answers', async () => {
  const s = await server.session('guarded.yaml', { title: 'Keyboard' });
  const p = await page(b);
  await p.goto(`${server.url}/c/${s.id}`);
  await p.getByRole('heading', { name: 'Keyboard' }).waitFor();
  // Tab until the message box has focus.
  for (let i = 0; i < 40; i++) {
    await p.keyboard.press('Tab');
    if (await p.evaluate(() => document.activeElement?.id === 'message')) break;
  }
  assert.equal(await p.evaluate(() => document.activeElement?.id), 'message');
  await p.keyboard.type('list the files');
  await p.keyboard.press('Enter');
  await p.getByRole('button', { name: 'Approve' }).waitFor();
  for (let i = 0; i < 60; i++) {
    await p.keyboard.press('Shift+Tab');
    if (await p.evaluate(() => document.activeElement?.textContent === 'Approve')) break;
  }
  assert.equal(await p.evaluate(() => document.activeElement?.textContent), 'Approve');
  await p.keyboard.press('Space');
  await p.locator('.message.assistant', { hasText: 'Done: the listing is above' }).waitFor();
  // Named controls for assistive technology.
  for (const name of ['Send', 'Rename', 'Delete', 'Attach file']) {
    assert.ok((await p.getByRole('button', { name }).count()) + (await p.getByLabel(name).count()) > 0, name);
  }
  await p.getByRole('log', { name: 'Transcript' }).waitFor();
  await p.getByRole('navigation', { name: 'Sessions' }).waitFor();
  await p.context().close();
});

test('start from a registered agent; a failed turn shows its reason as an error card', async () => {
  await server.api('POST', '/v1/agents', {
    config: {
      name: 'broken-helper',
      description: 'Its harness file is gone.',
      executor: { harness: '/nonexistent/gone.wasm', provider: 'scripted', script: [{ text: 'never' }] },
    },
  });
  const p = await page(b);
  await p.goto(server.url + '/');
  await p.getByRole('radio', { name: /A registered agent/ }).check();
  await p.getByLabel('Agent', { exact: true }).selectOption({ label: 'broken-helper — Its harness file is gone.' });
  await p.getByLabel('First message').fill('try');
  await p.getByRole('button', { name: 'Start session' }).click();
  await p.waitForURL(/\/c\/conv_/);
  const card = p.getByRole('alert').filter({ hasText: 'The last turn failed' });
  await card.waitFor({ timeout: 30_000 });
  assert.match(await card.innerText(), /gone\.wasm/);
  const id = p.url().split('/c/')[1];
  await p.locator(`[data-session-id="${id}"] .dot.failed`).waitFor();
  await p.context().close();
});
