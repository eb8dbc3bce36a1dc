// Scenarios 5–7 and 19: a pending approval is visible from everywhere (badge, inbox, its own page), answered
// inline or on its deep link, survives a server restart, and two tabs agree. Also: an MCP server's question.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

import { page, start, stop } from './harness.mjs';

let server, b;
before(async () => ({ server, b } = await start()));
after(() => stop({ server, b }));

async function paused(title) {
  const s = await server.session('guarded.yaml', { title });
  await server.api('POST', `/v1/sessions/${s.id}/events`, { type: 'message', data: { role: 'user', content: 'list' } });
  for (let i = 0; i < 100; i++) {
    const snap = await server.api('GET', `/v1/sessions/${s.id}`);
    if (snap.status === 'paused') return { id: s.id, eid: snap.pending_elicitations[0].elicitation_id };
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('the session never paused');
}

test('badge, inbox and card; Approve runs the tool and the badge goes', async () => {
  const p = await page(b);
  await p.goto(server.url + '/');
  const { id } = await paused('Approve me');
  const row = p.locator(`[data-session-id="${id}"]`);
  await row.getByText('Needs response').waitFor();
  await p.getByRole('link', { name: /Inbox/ }).getByText('1').waitFor();
  await p.getByRole('link', { name: /Inbox/ }).click();
  const card = p.getByRole('group', { name: 'Approval required' });
  await card.getByText('policy: ask_os').waitFor();
  await card.getByText('"command":"ls -la"').first().waitFor();
  await row.click();
  await p.waitForURL(`**/c/${id}`);
  await p.getByText('Respond to the pending request above to continue.').waitFor();
  await p.getByRole('button', { name: 'Approve' }).click();
  await p.locator('.message.assistant', { hasText: 'Done: the listing is above' }).waitFor();
  await row.getByText('Needs response').waitFor({ state: 'detached' });
  assert.equal(await p.getByRole('group', { name: 'Approval required' }).count(), 0);
  await p.context().close();
});

test('Deny: the tool does not run and the model is told', async () => {
  const { id } = await paused('Deny me');
  const p = await page(b);
  await p.goto(`${server.url}/c/${id}`);
  await p.getByRole('button', { name: 'Deny' }).click();
  await p.locator('.message.assistant', { hasText: 'Done:' }).waitFor();
  await p.locator('details.tool-work summary').first().click();
  await p.locator('details.tool-call summary').first().click();
  const output = await p.locator('details.tool-call pre').nth(1).innerText();
  assert.doesNotMatch(output, /exit code: 0/, 'the command did not run');
  await p.context().close();
});

test('the approve page answers, and the open session page follows live; a second tab agrees', async () => {
  const { id, eid } = await paused('Deep approval');
  const session = await page(b);
  await session.goto(`${server.url}/c/${id}`);
  const other = await page(b);
  await other.goto(`${server.url}/c/${id}`);
  await other.getByRole('button', { name: 'Approve' }).waitFor();
  const approve = await page(b);
  await approve.goto(`${server.url}/approve/${id}/${eid}`);
  await approve.getByRole('heading', { name: 'Approval' }).waitFor();
  await approve.getByRole('button', { name: 'Approve' }).click();
  for (const p of [session, other]) {
    await p.locator('.message.assistant', { hasText: 'Done: the listing is above' }).waitFor();
    assert.equal(await p.getByRole('button', { name: 'Approve' }).count(), 0, 'the card left both tabs');
  }
  // Both tabs show the same items in the same order.
  const ids = (p) => p.locator('[data-item-id]').evaluateAll((nodes) => nodes.map((n) => n.dataset.itemId));
  assert.deepEqual(await ids(session), await ids(other));
  for (const p of [session, other, approve]) await p.context().close();
});

test('approve after a server restart: the card is still there and the turn finishes without a second model call', async () => {
  const { id } = await paused('Restart while waiting');
  const p = await page(b);
  await p.goto(`${server.url}/c/${id}`);
  await p.getByRole('button', { name: 'Approve' }).waitFor();
  await server.restart();
  await p.reload();
  await p.getByRole('button', { name: 'Approve' }).click();
  await p.locator('.message.assistant', { hasText: 'Done: the listing is above' }).waitFor();
  // The scripted model answers call N with reply N: a repeated first call would show its text twice.
  assert.equal(await p.locator('.message.assistant', { hasText: "I'll look first." }).count(), 1);
  assert.equal(await p.locator('details.tool-call').count(), 1);
  await p.context().close();
});

// An MCP server's own question (elicitation) during a tool call: the card names the server and shows the fields
// the server asks for; what the human fills in reaches the server. Needs the venv with the MCP SDK (scripts/test).
const python = process.env.OMNIGENT_SDK_PYTHON;
test('an MCP server asks for fields: a form on the card, and the server gets the answer', { skip: !python && 'OMNIGENT_SDK_PYTHON is not set' }, async () => {
  if (process.env.OMNIGENT_REQUIRE_SDK === '1') assert.ok(python, 'OMNIGENT_SDK_PYTHON is not set');
  const fixture = fileURLToPath(new URL('../../../tests/fixtures/mcp_server.py', import.meta.url));
  const config = {
    name: 'mcp-asker',
    executor: { harness: 'agent', provider: 'scripted', script: [
      { text: 'Deploying. ', tool_call: { name: 'fx__deploy', arguments: { service: 'api' } } },
      { text: 'Deployed.' },
    ] },
    tools: { fx: { type: 'mcp', command: python, args: [fixture, 'stdio'] } },
    os_env: { sandbox: { write_paths: ['.'], read_paths: [dirname(dirname(python)), dirname(fixture)] } },
  };
  const s = await server.api('POST', '/v1/sessions', { config, title: 'MCP question' });
  const p = await page(b);
  await p.goto(`${server.url}/c/${s.id}`);
  await server.api('POST', `/v1/sessions/${s.id}/events`, { type: 'message', data: { role: 'user', content: 'go' } });
  const card = p.getByRole('group', { name: 'Approval required' });
  await card.getByText('Question from MCP server fx').waitFor({ timeout: 30_000 });
  await card.getByText('Deploy api where?').waitFor();
  // The required field must be filled in before Approve goes.
  await card.getByRole('button', { name: 'Approve' }).click();
  await card.getByRole('alert').getByText(/required/).waitFor();
  await card.getByLabel(/^Env/).fill('prod');
  await card.getByLabel(/^Replicas/).fill('3');
  await card.getByRole('button', { name: 'Approve' }).click();
  await p.locator('.message.assistant', { hasText: 'Deployed.' }).waitFor();
  const items = (await server.api('GET', `/v1/sessions/${s.id}`)).items;
  const output = items.find((i) => i.type === 'function_call_output');
  assert.equal(output.data.output, 'deploying api to prod x3');
  await p.context().close();
});
