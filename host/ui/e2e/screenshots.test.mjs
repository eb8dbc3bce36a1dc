// The README's pictures of the UI, taken from a real session: the session page mid-conversation and an approval.
// Written to docs/ with OMNIGENT_UI_SCREENSHOTS=1 (see README, "Web UI"); otherwise to a temporary dir, so this
// test still checks that the pages render.
import assert from 'node:assert/strict';
import { mkdtempSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';

import { page, start, stop } from './harness.mjs';

const OUT = process.env.OMNIGENT_UI_SCREENSHOTS === '1' ? join(process.env.OMNIGENT_REPO, 'docs') : mkdtempSync(join(tmpdir(), 'omnigent-shots-'));
let server, b;
before(async () => ({ server, b } = await start()));
after(() => stop({ server, b }));

test('screenshots of a session and of an approval', async () => {
  const demo = await server.session('demo.yaml', { title: 'Look around the repository' });
  await server.api('POST', `/v1/sessions/${demo.id}/events`, {
    type: 'message',
    data: { role: 'user', content: 'What is in this directory?' },
  });
  const guarded = await server.session('guarded.yaml', { title: 'Careful listing' });
  await server.api('POST', `/v1/sessions/${guarded.id}/events`, {
    type: 'message',
    data: { role: 'user', content: 'List the files, please.' },
  });
  const p = await page(b);
  await p.setViewportSize({ width: 1280, height: 760 });
  await p.goto(`${server.url}/c/${demo.id}`);
  await p.locator('.message.assistant', { hasText: 'I listed the files' }).waitFor();
  await p.locator('details.tool-work summary').first().click();
  await p.screenshot({ path: join(OUT, 'webui-session.png') });
  await p.goto(`${server.url}/c/${guarded.id}`);
  await p.getByRole('button', { name: 'Approve' }).waitFor();
  await p.screenshot({ path: join(OUT, 'webui-approval.png') });
  for (const name of ['webui-session.png', 'webui-approval.png']) assert.ok(statSync(join(OUT, name)).size > 10_000, name);
  await p.context().close();
});
