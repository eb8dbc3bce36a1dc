// The message box: Enter sends (Shift+Enter for a new line). During a turn a message steers it (or waits for the
// next turn) and shows as queued until the session takes it; while an approval is pending the box says so.
import { useState } from 'preact/hooks';

import { errorText, post, request, sessionPath } from './api';
import type { LiveSession } from './session';

export function Composer({ live }: { live: LiveSession }) {
  const [text, setText] = useState('');
  const [error, setError] = useState<string | null>(null);
  const [queued, setQueued] = useState<{ id: string; text: string }[]>([]);
  const [uploading, setUploading] = useState(false);
  const status = live.status.value;
  const waiting = live.pending.value.length > 0;
  const present = new Set(live.entries.value.map((e) => e.id));
  const stillQueued = queued.filter((q) => !present.has(q.id));

  const send = async () => {
    const message = text.trim();
    if (!message) return;
    setError(null);
    try {
      const ack = await post<{ queued: boolean; item_id?: string }>(`${sessionPath(live.id)}/events`, {
        type: 'message',
        data: { role: 'user', content: message },
      });
      setText('');
      if (ack.item_id) setQueued((q) => [...q, { id: ack.item_id!, text: message }]);
    } catch (e) {
      setError(errorText(e));
    }
  };

  const interrupt = async () => {
    try {
      await post(`${sessionPath(live.id)}/events`, { type: 'interrupt' });
    } catch (e) {
      setError(errorText(e));
    }
  };

  const upload = async (files: FileList | null) => {
    if (!files?.length) return;
    setUploading(true);
    setError(null);
    try {
      for (const file of files) {
        const form = new FormData();
        form.append('file', file, file.name);
        await request('POST', `${sessionPath(live.id)}/resources/files`, form);
      }
    } catch (e) {
      setError(errorText(e));
    } finally {
      setUploading(false);
    }
  };

  return (
    <form
      class="composer"
      onSubmit={(e) => {
        e.preventDefault();
        send();
      }}
    >
      {stillQueued.map((q) => (
        <div key={q.id} class="queued" data-queued-id={q.id}>
          <span class="tag">queued</span> {q.text}
        </div>
      ))}
      {waiting && <p class="hint">Respond to the pending request above to continue.</p>}
      <label class="visually-hidden" for="message">
        Message
      </label>
      <textarea
        id="message"
        rows={3}
        value={text}
        placeholder={status === 'running' ? 'Steer the agent while it works…' : 'Message the agent…'}
        onInput={(e) => setText((e.target as HTMLTextAreaElement).value)}
        onKeyDown={(e) => {
          if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
            e.preventDefault();
            send();
          }
        }}
      />
      <div class="composer-actions">
        <label class="button subtle">
          {uploading ? 'Uploading…' : 'Attach file'}
          <input
            type="file"
            class="visually-hidden"
            aria-label="Attach file"
            multiple
            onChange={(e) => {
              const input = e.target as HTMLInputElement;
              upload(input.files).then(() => (input.value = ''));
            }}
          />
        </label>
        <span class="spacer" />
        {status !== 'running' && status !== 'paused' && (
          <button
            type="button"
            class="subtle"
            title="Summarize the older conversation so the model's context stays small"
            onClick={() =>
              post(`${sessionPath(live.id)}/events`, { type: 'compact' }).catch((e) => setError(errorText(e)))
            }
          >
            Compact
          </button>
        )}
        {status === 'running' && (
          <button type="button" class="danger" onClick={interrupt}>
            Interrupt
          </button>
        )}
        <button type="submit" class="primary" disabled={!text.trim()}>
          Send
        </button>
      </div>
      {error && (
        <p class="error-text" role="alert">
          {error}
        </p>
      )}
    </form>
  );
}
