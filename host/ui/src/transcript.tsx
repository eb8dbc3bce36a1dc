// The transcript: user bubbles, assistant markdown, tool work folded into one expandable group per stretch of
// calls (each call opens to its arguments and output), reasoning, errors as cards, and the text of the turn in
// progress as it streams. Every item carries data-item-id (one DOM node per item, whatever was replayed).
import type { ComponentChildren } from 'preact';
import { useRef, useState } from 'preact/hooks';

import { Markdown } from './markdown';
import type { Entry, LiveSession } from './session';
import type { ContentPart, Item } from './types';

export interface ItemActions {
  fork: (item: Item) => void;
  comment: (item: Item, text: string, selection: string) => void;
}

export function messageText(item: Item): string {
  if (typeof item.content === 'string') return item.content;
  return (item.content ?? [])
    .filter((p: ContentPart) => typeof p.text === 'string')
    .map((p: ContentPart) => p.text)
    .join('');
}

function attachments(item: Item): ContentPart[] {
  return Array.isArray(item.content) ? item.content.filter((p) => p.type === 'input_file' || p.type === 'input_image') : [];
}

const isToolWork = (e: Entry) =>
  e.kind === 'item' && ['function_call', 'function_call_output', 'reasoning'].includes(e.item.type);

type Block = { kind: 'single'; entry: Entry } | { kind: 'work'; id: string; entries: Entry[] };

function blocks(entries: Entry[]): Block[] {
  const out: Block[] = [];
  for (const entry of entries) {
    const last = out[out.length - 1];
    if (isToolWork(entry)) {
      if (last?.kind === 'work') last.entries.push(entry);
      else out.push({ kind: 'work', id: entry.id, entries: [entry] });
    } else {
      out.push({ kind: 'single', entry });
    }
  }
  return out;
}

/** How many blocks a long transcript shows at first (the newest); earlier ones come on request. */
const WINDOW = 200;

export function Transcript({ live, actions, focus }: { live: LiveSession; actions: ItemActions; focus?: string }) {
  const entries = live.entries.value;
  const streaming = live.streaming.value;
  const running = live.status.value === 'running';
  const [shown, setShown] = useState(WINDOW);
  const all = blocks(entries);
  // A deep link to an older item widens the window to include it.
  const wanted = focus ? all.findIndex((b) => (b.kind === 'work' ? b.entries : [b.entry]).some((e) => e.id === focus)) : -1;
  const from = Math.max(0, Math.min(all.length - shown, wanted >= 0 ? wanted : all.length));
  return (
    <div class="transcript" role="log" aria-label="Transcript" aria-busy={running}>
      {entries.length === 0 && !streaming && <p class="empty">No messages yet. Say what the agent should do.</p>}
      {from > 0 && (
        <button type="button" class="subtle show-earlier" onClick={() => setShown(all.length)}>
          Show earlier messages ({from} more)
        </button>
      )}
      {all.slice(from).map((b) =>
        b.kind === 'work' ? <ToolWork key={b.id} entries={b.entries} /> : <EntryView key={b.entry.id} entry={b.entry} actions={actions} />,
      )}
      {streaming && (streaming.text || streaming.reasoning) && (
        <div class="message assistant streaming" aria-live="off">
          {streaming.reasoning && <p class="reasoning-live">{streaming.reasoning}</p>}
          {streaming.text && <Markdown text={streaming.text} />}
        </div>
      )}
      {running && <p class="working" aria-hidden="true">Working…</p>}
    </div>
  );
}

function EntryView({ entry, actions }: { entry: Entry; actions: ItemActions }) {
  if (entry.kind === 'notice') {
    return (
      <div class={`notice ${entry.tone}`} role={entry.tone === 'error' ? 'alert' : undefined} data-notice-id={entry.id}>
        <strong>{entry.text}</strong>
        {entry.detail && <span> — {entry.detail}</span>}
      </div>
    );
  }
  const item = entry.item;
  if (item.type === 'message') return <Message item={item} actions={actions} />;
  if (item.type === 'error') {
    return (
      <details class="error-card" open data-item-id={item.id}>
        <summary>Something went wrong</summary>
        <p>
          {item.code ? `${item.code}: ` : ''}
          {item.message ?? JSON.stringify(item)}
        </p>
      </details>
    );
  }
  if (item.type === 'compaction') {
    return (
      <details class="compaction" data-item-id={item.id}>
        <summary>
          Earlier conversation compacted ({String(item.compacted_messages ?? '?')} messages summarized for the model; the
          transcript keeps them)
        </summary>
        <p class="compaction-summary">{String(item.summary ?? '')}</p>
      </details>
    );
  }
  if (item.type === 'compaction_request') {
    return (
      <div class="other-item" data-item-id={item.id}>
        Compaction requested
      </div>
    );
  }
  return (
    <div class="other-item" data-item-id={item.id}>
      {item.type}
    </div>
  );
}

function Message({ item, actions }: { item: Item; actions: ItemActions }) {
  const text = messageText(item);
  const ref = useRef<HTMLDivElement>(null);
  const [copied, setCopied] = useState(false);
  const files = attachments(item);
  if (item.role === 'user' || item.role === 'system') {
    return (
      <div class={`message ${item.role}`} data-item-id={item.id} id={item.id}>
        <div class="bubble">{text}</div>
        {files.length > 0 && (
          <ul class="attachments">
            {files.map((f) => (
              <li key={f.file_id}>📎 {f.filename ?? f.file_id}</li>
            ))}
          </ul>
        )}
      </div>
    );
  }
  const selection = () => {
    const sel = getSelection();
    if (!sel || sel.isCollapsed || !ref.current || !ref.current.contains(sel.anchorNode)) return '';
    return sel.toString();
  };
  return (
    <div class="message assistant" data-item-id={item.id} id={item.id}>
      <div ref={ref}>
        <Markdown text={text} />
      </div>
      <div class="item-actions">
        <button
          type="button"
          class="subtle"
          onClick={() => {
            navigator.clipboard?.writeText(text).then(() => setCopied(true));
            setTimeout(() => setCopied(false), 1500);
          }}
        >
          {copied ? 'Copied' : 'Copy'}
        </button>
        {item.response_id && (
          <button type="button" class="subtle" onClick={() => actions.fork(item)}>
            Fork from here
          </button>
        )}
        <button
          type="button"
          class="subtle"
          // mousedown would clear the selection before click reads it
          onMouseDown={(e) => e.preventDefault()}
          onClick={() => actions.comment(item, text, selection())}
        >
          Comment
        </button>
        <a class="subtle" href={`#${item.id}`}>
          Link
        </a>
      </div>
    </div>
  );
}

function argsSummary(item: Item): string {
  try {
    const args = JSON.parse(item.arguments ?? '{}');
    const first = args.command ?? args.path ?? args.query ?? args.url ?? Object.values(args)[0];
    return typeof first === 'string' ? first : JSON.stringify(args);
  } catch {
    return item.arguments ?? '';
  }
}

function pretty(value: unknown): string {
  if (typeof value === 'string') {
    try {
      return JSON.stringify(JSON.parse(value), null, 2);
    } catch {
      return value;
    }
  }
  return JSON.stringify(value, null, 2);
}

function ToolWork({ entries }: { entries: Entry[] }) {
  const items = entries.map((e) => (e as { item: Item }).item);
  const outputs = new Map(items.filter((i) => i.type === 'function_call_output').map((i) => [i.call_id, i]));
  const calls = items.filter((i) => i.type === 'function_call');
  const matched = new Set(calls.map((c) => c.call_id));
  const names = calls.map((c) => c.name);
  const summary = calls.length
    ? `${calls.length} tool call${calls.length > 1 ? 's' : ''}: ${[...new Set(names)].join(', ')}`
    : 'Reasoning';
  return (
    <details class="tool-work" data-group={items[0].id}>
      <summary>Worked — {summary}</summary>
      {items.map((i) => {
        if (i.type === 'reasoning') {
          const text = (i.summary ?? []).map((s) => (typeof s === 'string' ? s : s.text ?? '')).join('\n');
          return (
            <div key={i.id} class="reasoning" data-item-id={i.id}>
              <em>Thought:</em> {text || '(no summary)'}
            </div>
          );
        }
        if (i.type === 'function_call') {
          const out = outputs.get(i.call_id);
          return (
            <ToolCall key={i.id} call={i} output={out} />
          );
        }
        if (i.type === 'function_call_output' && matched.has(i.call_id)) {
          return <span key={i.id} data-item-id={i.id} hidden />;
        }
        return (
          <Row key={i.id} id={i.id} title={`output of ${i.call_id}`}>
            <pre>{pretty(i.output)}</pre>
          </Row>
        );
      })}
    </details>
  );
}

function ToolCall({ call, output }: { call: Item; output?: Item }) {
  return (
    <Row id={call.id} title={`${call.name} ${argsSummary(call)}`} pending={!output}>
      <h4>Arguments</h4>
      <pre>{pretty(call.arguments)}</pre>
      <h4>Output</h4>
      {output ? <pre>{pretty(output.output)}</pre> : <p class="subtle">No output yet.</p>}
    </Row>
  );
}

function Row({ id, title, pending, children }: { id: string; title: string; pending?: boolean; children: ComponentChildren }) {
  return (
    <details class="tool-call" data-item-id={id}>
      <summary>
        <code>{title}</code>
        {pending && <span class="tag">waiting</span>}
      </summary>
      {children}
    </details>
  );
}
