// Review comments on this session's transcript (anchored to a message and the text selected in it) and files:
// edit, delete, and "Send comments", which turns the open ones into one message to the agent.
import { useState } from 'preact/hooks';

import { del, errorText, patch, post, sessionPath } from './api';
import type { LiveSession } from './session';
import type { Comment } from './types';
import { useFetch } from './use-fetch';

export function CommentsPanel({ live }: { live: LiveSession }) {
  const [error, setError] = useState<string | null>(null);
  const [editing, setEditing] = useState<string | null>(null);
  const [draft, setDraft] = useState('');
  const { data } = useFetch<Comment[]>(`${sessionPath(live.id)}/comments`, [live.commentsVersion.value]);
  const comments = data ?? [];
  const open = comments.filter((c) => c.status !== 'addressed');
  const sent = comments.filter((c) => c.status === 'addressed');
  const base = `${sessionPath(live.id)}/comments`;
  const run = (p: Promise<unknown>) => p.catch((e) => setError(errorText(e)));

  const sendAll = () =>
    run(
      (async () => {
        const { formatted_message } = await post<{ formatted_message: string }>(`${base}/send`, {
          comment_ids: open.map((c) => c.id),
        });
        await post(`${sessionPath(live.id)}/events`, { type: 'message', data: { role: 'user', content: formatted_message } });
      })(),
    );

  const row = (c: Comment) => (
    <li key={c.id} class="comment" data-comment-id={c.id}>
      <div class="subtle">
        on <a href={`#${c.path}`}>{c.path.startsWith('msg_') ? 'a message' : c.path}</a>
        {c.anchor_content && <q>{c.anchor_content}</q>}
      </div>
      {editing === c.id ? (
        <form
          onSubmit={(e) => {
            e.preventDefault();
            run(patch(`${base}/${c.id}`, { body: draft })).then(() => setEditing(null));
          }}
        >
          <label class="visually-hidden" for={`edit-${c.id}`}>
            Comment text
          </label>
          <textarea id={`edit-${c.id}`} value={draft} onInput={(e) => setDraft((e.target as HTMLTextAreaElement).value)} />
          <button type="submit" class="primary">
            Save
          </button>
          <button type="button" class="subtle" onClick={() => setEditing(null)}>
            Cancel
          </button>
        </form>
      ) : (
        <p class="comment-body">{c.body}</p>
      )}
      {editing !== c.id && c.status !== 'addressed' && (
        <div class="actions">
          <button
            type="button"
            class="subtle"
            onClick={() => {
              setEditing(c.id);
              setDraft(c.body);
            }}
          >
            Edit
          </button>
          <button type="button" class="subtle" onClick={() => run(del(`${base}/${c.id}`))}>
            Delete
          </button>
        </div>
      )}
    </li>
  );

  return (
    <div class="panel-body">
      {error && <p class="error-text" role="alert">{error}</p>}
      <h3>Open</h3>
      {open.length === 0 ? <p class="subtle">No open comments. Select text in a reply and press Comment.</p> : <ul class="plain">{open.map(row)}</ul>}
      {open.length > 0 && (
        <button type="button" class="primary" onClick={sendAll}>
          Send comments
        </button>
      )}
      <h3>Sent</h3>
      {sent.length === 0 ? <p class="subtle">No sent comments.</p> : <ul class="plain">{sent.map(row)}</ul>}
    </div>
  );
}
