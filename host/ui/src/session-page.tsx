// A session's page (/c/<id>): header (title, state, rename, delete), the live transcript with pending approvals
// and the message box, and a side panel (info, files, comments, sub-agents, terminals).
import { useEffect, useMemo, useRef, useState } from 'preact/hooks';

import { ApprovalCard } from './approval';
import { AgentsPanel } from './agents-panel';
import { del, errorText, patch, post, sessionPath } from './api';
import { CommentsPanel } from './comments-panel';
import { Composer } from './composer';
import { deleted, remember } from './feed';
import { FilesPanel } from './files-panel';
import { InfoPanel } from './info-panel';
import { navigate, sessionUrl } from './router';
import { LiveSession } from './session';
import { StatusMark } from './status';
import { TerminalsPanel } from './terminals-panel';
import { Transcript } from './transcript';
import type { Item, Snapshot } from './types';

const TABS = ['Info', 'Files', 'Comments', 'Sub-agents', 'Terminals'] as const;
type Tab = (typeof TABS)[number];

export function SessionPage({ id, item }: { id: string; item?: string }) {
  const live = useMemo(() => new LiveSession(id), [id]);
  useEffect(() => {
    live.open();
    return () => live.close();
  }, [live]);
  const [tab, setTab] = useState<Tab>('Info');
  const [forking, setForking] = useState<Item | null>(null);
  const [commenting, setCommenting] = useState<{ item: Item; text: string; selection: string } | null>(null);
  const [error, setError] = useState<string | null>(null);

  // A deep link to an item scrolls to it once the transcript has it.
  const scrolled = useRef<string | null>(null);
  useEffect(() => {
    if (item && scrolled.current !== item && live.entries.value.some((e) => e.id === item)) {
      scrolled.current = item;
      document.getElementById(item)?.scrollIntoView({ block: 'center' });
    }
  });

  if (live.gone.value || deleted.value.has(id)) {
    return (
      <main class="page" aria-labelledby="page-title">
        <h1 id="page-title">Session deleted</h1>
        <p role="status">This session was deleted (or never existed here): {id}</p>
        <a href="/">Start a new session</a>
      </main>
    );
  }
  if (live.loadError.value) {
    return (
      <main class="page">
        <p class="error-text" role="alert">
          Cannot load this session: {live.loadError.value}
        </p>
      </main>
    );
  }
  const snap = live.snapshot.value;
  if (!snap) return <main class="page" aria-busy="true"><p>Loading…</p></main>;

  const title = live.title.value ?? snap.agent_name ?? 'Untitled session';
  const rename = async () => {
    const next = prompt('Rename this session', live.title.value ?? '');
    if (next === null || !next.trim()) return;
    try {
      const updated = await patch<Snapshot>(sessionPath(id), { title: next.trim() });
      live.title.value = updated.title;
    } catch (e) {
      setError(errorText(e));
    }
  };
  const remove = async () => {
    if (!confirm(`Delete "${title}" and its whole history?`)) return;
    try {
      await del(sessionPath(id));
      navigate('/');
    } catch (e) {
      setError(errorText(e));
    }
  };

  return (
    <div class="session-layout">
      <main class="session-main" aria-labelledby="page-title">
        <header class="session-header">
          <h1 id="page-title">{title}</h1>
          <StatusMark status={live.status.value} waiting={live.pending.value.length > 0} />
          <span class="status-text" data-status={live.status.value}>
            {live.status.value}
          </span>
          {!live.connected.value && <span class="tag" role="status">reconnecting…</span>}
          <span class="spacer" />
          <button type="button" class="subtle" onClick={rename}>
            Rename
          </button>
          <button type="button" class="subtle danger-text" onClick={remove}>
            Delete
          </button>
        </header>
        {error && <p class="error-text" role="alert">{error}</p>}
        <Transcript
          live={live}
          focus={item}
          actions={{
            fork: (i) => setForking(i),
            comment: (i, text, selection) => setCommenting({ item: i, text, selection }),
          }}
        />
        {live.status.value === 'failed' && live.error.value && (
          <div role="alert">
            <details class="error-card" open>
              <summary>The last turn failed</summary>
              <p>
                {live.error.value.code}: {live.error.value.message}
              </p>
            </details>
          </div>
        )}
        {live.pending.value.map((e) => (
          <ApprovalCard key={e.elicitation_id} session={id} elicitation={e} />
        ))}
        <Composer live={live} />
      </main>
      <aside class="side-panel" aria-label="Session details">
        <div role="tablist" aria-label="Session panels" class="tabs">
          {TABS.map((t) => (
            <button
              key={t}
              type="button"
              role="tab"
              id={`tab-${t}`}
              aria-selected={tab === t}
              aria-controls="side-panel-body"
              onClick={() => setTab(t)}
            >
              {t}
            </button>
          ))}
        </div>
        <div role="tabpanel" id="side-panel-body" aria-labelledby={`tab-${tab}`}>
          {tab === 'Info' && <InfoPanel live={live} />}
          {tab === 'Files' && <FilesPanel live={live} />}
          {tab === 'Comments' && <CommentsPanel live={live} />}
          {tab === 'Sub-agents' && <AgentsPanel live={live} />}
          {tab === 'Terminals' && <TerminalsPanel live={live} />}
        </div>
      </aside>
      {forking && <ForkDialog session={id} item={forking} title={title} onClose={() => setForking(null)} />}
      {commenting && (
        <CommentDialog
          session={id}
          {...commenting}
          onClose={(saved) => {
            setCommenting(null);
            if (saved) setTab('Comments');
          }}
        />
      )}
    </div>
  );
}

function Dialog({ label, onClose, children }: { label: string; onClose: () => void; children: preact.ComponentChildren }) {
  const ref = useRef<HTMLDialogElement>(null);
  useEffect(() => {
    ref.current?.showModal();
  }, []);
  return (
    <dialog ref={ref} aria-label={label} onClose={onClose} onCancel={onClose}>
      {children}
    </dialog>
  );
}

function ForkDialog({ session, item, title, onClose }: { session: string; item: Item; title: string; onClose: () => void }) {
  const [name, setName] = useState(`${title} (fork)`);
  const [error, setError] = useState<string | null>(null);
  const fork = async (e: Event) => {
    e.preventDefault();
    try {
      const created = await post<Snapshot>(`${sessionPath(session)}/fork`, {
        title: name.trim() || undefined,
        up_to_response_id: item.response_id,
      });
      remember({ ...created, pending_elicitations_count: 0 });
      onClose();
      navigate(sessionUrl(created.id));
    } catch (err) {
      setError(errorText(err));
    }
  };
  return (
    <Dialog label="Fork from this response" onClose={onClose}>
      <form onSubmit={fork}>
        <h2>Fork from this response</h2>
        <p class="subtle">A new session with this conversation up to this reply; the original stays as it is.</p>
        <label for="fork-title">Title</label>
        <input id="fork-title" value={name} onInput={(e) => setName((e.target as HTMLInputElement).value)} />
        {error && <p class="error-text" role="alert">{error}</p>}
        <div class="actions">
          <button type="submit" class="primary">
            Fork
          </button>
          <button type="button" class="subtle" onClick={onClose}>
            Cancel
          </button>
        </div>
      </form>
    </Dialog>
  );
}

function CommentDialog({ session, item, text, selection, onClose }: {
  session: string;
  item: Item;
  text: string;
  selection: string;
  onClose: (saved: boolean) => void;
}) {
  const [body, setBody] = useState('');
  const [error, setError] = useState<string | null>(null);
  const start = selection ? text.indexOf(selection) : -1;
  const save = async (e: Event) => {
    e.preventDefault();
    if (!body.trim()) return;
    try {
      await post(`${sessionPath(session)}/comments`, {
        path: item.id,
        body: body.trim(),
        ...(selection
          ? { anchor_content: selection, start_index: start >= 0 ? start : undefined, end_index: start >= 0 ? start + selection.length : undefined }
          : {}),
      });
      onClose(true);
    } catch (err) {
      setError(errorText(err));
    }
  };
  return (
    <Dialog label="Add a comment" onClose={() => onClose(false)}>
      <form onSubmit={save}>
        <h2>Add a comment</h2>
        {selection ? <blockquote>{selection}</blockquote> : <p class="subtle">On the whole reply (select text first to anchor it).</p>}
        <label for="comment-body">Comment</label>
        <textarea id="comment-body" rows={4} value={body} onInput={(e) => setBody((e.target as HTMLTextAreaElement).value)} />
        {error && <p class="error-text" role="alert">{error}</p>}
        <div class="actions">
          <button type="submit" class="primary">
            Add comment
          </button>
          <button type="button" class="subtle" onClick={() => onClose(false)}>
            Cancel
          </button>
        </div>
      </form>
    </Dialog>
  );
}
