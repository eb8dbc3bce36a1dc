// Scenarios 10–13: review comments anchored to transcript text (live in a second tab, edit, delete, send), files
// (upload, the agent's own, download, delete, a refused upload), fork from a response, sub-agents as a live tree.
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';

import { page, start, stop } from './harness.mjs';

let server, b;
before(async () => ({ server, b } = await start()));
after(() => stop({ server, b }));

async function finished(title, example = 'demo.yaml', change) {
  const s = await server.session(example, { title, change });
  await server.api('POST', `/v1/sessions/${s.id}/events`, { type: 'message', data: { role: 'user', content: 'go' } });
  for (let i = 0; i < 100; i++) {
    const snap = await server.api('GET', `/v1/sessions/${s.id}`);
    if (snap.status === 'idle' && snap.items.length >= 3) return snap;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('the turn never finished');
}

test('comments: select text, comment, a second tab sees it live, edit, delete, send', async () => {
  const snap = await finished('Review me');
  const p = await page(b);
  const other = await page(b);
  await p.goto(`${server.url}/c/${snap.id}`);
  await other.goto(`${server.url}/c/${snap.id}`);
  await other.getByRole('tab', { name: 'Comments' }).click();
  const reply = p.locator('.message.assistant', { hasText: 'I listed the files' });
  // Select the words "the shell tool" inside the reply.
  await reply.locator('.markdown p').evaluate((el) => {
    const text = el.firstChild;
    const start = text.textContent.indexOf('the shell tool');
    const range = document.createRange();
    range.setStart(text, start);
    range.setEnd(text, start + 'the shell tool'.length);
    getSelection().removeAllRanges();
    getSelection().addRange(range);
  });
  await reply.getByRole('button', { name: 'Comment' }).click();
  const dialog = p.getByRole('dialog', { name: 'Add a comment' });
  await dialog.getByText('the shell tool').waitFor();
  await dialog.getByLabel('Comment').fill('Which shell?');
  await dialog.getByRole('button', { name: 'Add comment' }).click();
  await p.locator('.comment', { hasText: 'Which shell?' }).waitFor();
  // Live in the other tab.
  await other.locator('.comment', { hasText: 'Which shell?' }).waitFor();
  const [comment] = await server.api('GET', `/v1/sessions/${snap.id}/comments`);
  assert.equal(comment.anchor_content, 'the shell tool');
  assert.equal(comment.path, await reply.getAttribute('data-item-id'), 'anchored to the reply it was made on');
  assert.ok(comment.path.startsWith('msg_'));
  assert.equal(comment.end_index - comment.start_index, 'the shell tool'.length);
  // Edit.
  await p.locator('.comment').getByRole('button', { name: 'Edit' }).click();
  await p.getByLabel('Comment text').fill('Which shell, exactly?');
  await p.getByRole('button', { name: 'Save' }).click();
  await other.locator('.comment', { hasText: 'Which shell, exactly?' }).waitFor();
  // A second comment, deleted.
  await reply.getByRole('button', { name: 'Comment' }).click();
  await p.getByRole('dialog', { name: 'Add a comment' }).getByLabel('Comment').fill('never mind');
  await p.getByRole('button', { name: 'Add comment' }).click();
  await p.locator('.comment', { hasText: 'never mind' }).getByRole('button', { name: 'Delete' }).click();
  await other.locator('.comment', { hasText: 'never mind' }).waitFor({ state: 'detached' });
  // Send: one message to the agent, and the comment moves to Sent.
  await p.getByRole('button', { name: 'Send comments' }).click();
  await p.locator('.message.user', { hasText: 'Please address these review comments' }).waitFor();
  await p.getByText('No open comments').waitFor();
  await p.context().close();
  await other.context().close();
});

test('files: upload from the composer, the agent writes one, download, delete, a refused upload', async () => {
  const hostile = process.env.OMNIGENT_TEST_HOSTILE_WASM;
  const s = await server.api('POST', '/v1/sessions', {
    title: 'Files',
    config_yaml: `name: writer\nexecutor:\n  harness: ${hostile}\n  provider: scripted\n  script: [{text: unused}]\n`,
  });
  const p = await page(b);
  await p.goto(`${server.url}/c/${s.id}`);
  await p.getByRole('tab', { name: 'Files' }).click();
  const upload = join(server.dir, 'notes.txt');
  writeFileSync(upload, 'my notes\n');
  await p.getByLabel('Attach file').setInputFiles(upload);
  await p.locator('.files li', { hasText: 'notes.txt' }).waitFor();
  // The harness writes report.txt (a session file), announced live.
  await p.getByLabel('Message', { exact: true }).fill('file');
  await p.getByLabel('Message', { exact: true }).press('Enter');
  const link = p.getByRole('link', { name: 'report.txt' });
  await link.waitFor();
  const [download] = await Promise.all([p.waitForEvent('download'), link.click()]);
  assert.equal(download.suggestedFilename(), 'report.txt');
  const bytes = readFileSync(await download.path());
  const files = await server.api('GET', `/v1/sessions/${s.id}/resources/files`);
  const report = files.data.find((f) => f.name === 'report.txt');
  const served = Buffer.from(await (await fetch(`${server.url}/v1/sessions/${s.id}/resources/files/${report.id}/content`)).arrayBuffer());
  assert.deepEqual(bytes, served);
  // Delete.
  await p.getByRole('button', { name: 'Delete notes.txt' }).click();
  await p.locator('.files li', { hasText: 'notes.txt' }).waitFor({ state: 'detached' });
  // A type the server refuses: its message, shown.
  const binary = join(server.dir, 'tool.exe');
  writeFileSync(binary, Buffer.from([0x4d, 0x5a, 0x90, 0x00, 0x03, 0x00, 0xff, 0xfe]));
  await p.getByLabel('Attach file').setInputFiles(binary);
  await p.locator('.composer [role="alert"]').waitFor();
  assert.match(await p.locator('.composer [role="alert"]').innerText(), /./);
  await p.context().close();
});

test('fork from a response: a new session up to it, the original unchanged, both listed', async () => {
  const snap = await finished('Original');
  const p = await page(b);
  await p.goto(`${server.url}/c/${snap.id}`);
  // Counted once the transcript is on screen (counted earlier, it was sometimes 0).
  await p.locator('.message.assistant', { hasText: 'I listed the files' }).waitFor();
  const before = await p.locator('[data-item-id]').count();
  await p.locator('.message.assistant', { hasText: 'Let me look around' }).getByRole('button', { name: 'Fork from here' }).click();
  const dialog = p.getByRole('dialog', { name: 'Fork from this response' });
  await dialog.getByLabel('Title').fill('The fork');
  await dialog.getByRole('button', { name: 'Fork' }).click();
  await p.getByRole('heading', { name: 'The fork' }).waitFor();
  const forkId = p.url().split('/c/')[1];
  assert.notEqual(forkId, snap.id);
  await p.locator('.message.assistant', { hasText: 'I listed the files' }).waitFor();
  await p.locator(`[data-session-id="${forkId}"]`).waitFor();
  await p.locator(`[data-session-id="${snap.id}"]`).click();
  await p.getByRole('heading', { name: 'Original' }).waitFor();
  await p.locator('.message.assistant', { hasText: 'I listed the files' }).waitFor();
  assert.equal(await p.locator('[data-item-id]').count(), before, 'the original is unchanged');
  await p.context().close();
});

test('sub-agents: the child appears in the tree with its status and opens to its transcript', async () => {
  const yaml = `name: lead
executor:
  harness: agent
  provider: scripted
  script:
    - text: "Asking the helper. "
      tool_call: {name: helper, arguments: {task: "say hi"}}
    - text: "The helper answered."
tools:
  helper:
    type: agent
    description: A helper.
    prompt: You help.
    executor:
      harness: agent
      provider: scripted
      script: [{text: "helper says: hi"}]
`;
  const s = await server.api('POST', '/v1/sessions', { title: 'Lead', config_yaml: yaml });
  const p = await page(b);
  await p.goto(`${server.url}/c/${s.id}`);
  await p.getByRole('tab', { name: 'Sub-agents' }).click();
  await p.getByLabel('Message', { exact: true }).fill('delegate');
  await p.getByLabel('Message', { exact: true }).press('Enter');
  await p.locator('.message.assistant', { hasText: 'The helper answered.' }).waitFor();
  const child = p.getByRole('treeitem').first();
  await child.waitFor();
  await child.locator('[data-child-status]', { hasText: 'idle' }).waitFor();
  await child.getByRole('link').click();
  await p.locator('.message.assistant', { hasText: 'helper says: hi' }).waitFor();
  await p.context().close();
});

test('rename and delete from the page', async () => {
  const s = await server.session('demo.yaml', { title: 'Old name' });
  const p = await page(b);
  await p.goto(`${server.url}/c/${s.id}`);
  p.once('dialog', (d) => d.accept('New name'));
  await p.getByRole('button', { name: 'Rename' }).click();
  await p.getByRole('heading', { name: 'New name' }).waitFor();
  await p.locator(`[data-session-id="${s.id}"]`, { hasText: 'New name' }).waitFor();
  p.once('dialog', (d) => d.accept());
  await p.getByRole('button', { name: 'Delete' }).click();
  await p.getByRole('heading', { name: 'What should we build?' }).waitFor();
  await p.locator(`[data-session-id="${s.id}"]`).waitFor({ state: 'detached' });
  await assert.rejects(server.api('GET', `/v1/sessions/${s.id}`), /404/);
  await p.context().close();
});
