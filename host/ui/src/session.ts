// One open session, live: its snapshot, then its stream from the snapshot's last sequence number. The browser's
// EventSource resends Last-Event-ID on every reconnect and the server replays the gap, so after a network drop or a
// server restart every item arrives exactly once: items are kept by id, and events at or below the cursor are
// skipped (the cursor is the data's sequence_number — never EventSource's lastEventId, which repeats the previous
// id on frames that have none, such as heartbeats).
import { batch, signal } from '@preact/signals';

import { ApiError, get, sessionPath } from './api';
import type { Elicitation, Item, NestedItem, Snapshot, Status, StreamEvent, TaskError } from './types';

export type Entry =
  | { kind: 'item'; id: string; item: Item }
  | { kind: 'notice'; id: string; tone: 'info' | 'error' | 'denied'; text: string; detail?: string };

export interface Streaming {
  responseId: string;
  text: string;
  reasoning: string;
}

/** Turns a snapshot's nested item into the flat shape the stream uses. */
export function flatten(item: NestedItem): Item {
  return { ...(item.data as object), id: item.id, type: item.type, status: item.status, response_id: item.response_id };
}

export function pendingList(p: Snapshot['pending_elicitations']): Elicitation[] {
  return Array.isArray(p) ? p : Object.values(p ?? {});
}

export class LiveSession {
  readonly snapshot = signal<Snapshot | null>(null);
  readonly entries = signal<Entry[]>([]);
  readonly streaming = signal<Streaming | null>(null);
  readonly status = signal<Status>('idle');
  readonly error = signal<TaskError | null>(null);
  readonly pending = signal<Elicitation[]>([]);
  readonly title = signal<string | null>(null);
  readonly gone = signal(false);
  readonly loadError = signal<string | null>(null);
  readonly connected = signal(false);
  /** Bumped when the session's files, comments or children change: their panels read them again. */
  readonly filesVersion = signal(0);
  readonly commentsVersion = signal(0);
  readonly childrenVersion = signal(0);
  readonly usageVersion = signal(0);

  private order = new Map<string, Entry>();
  private cursor = 0;
  private source: EventSource | null = null;
  private closed = false;
  private pendingText = '';
  private pendingReasoning = '';
  private flushScheduled = false;

  constructor(readonly id: string) {}

  async open() {
    try {
      const snap = await get<Snapshot>(`${sessionPath(this.id)}?include_items=true`);
      if (this.closed) return;
      this.order.clear();
      for (const nested of snap.items ?? []) {
        const item = flatten(nested);
        this.order.set(item.id, { kind: 'item', id: item.id, item });
      }
      this.cursor = snap.last_seq;
      batch(() => {
        this.snapshot.value = snap;
        this.status.value = snap.status;
        this.error.value = snap.last_task_error;
        this.pending.value = pendingList(snap.pending_elicitations);
        this.title.value = snap.title;
        this.entries.value = [...this.order.values()];
        this.loadError.value = null;
      });
      this.listen();
    } catch (e) {
      if (e instanceof ApiError && e.status === 404) this.gone.value = true;
      else this.loadError.value = e instanceof Error ? e.message : String(e);
    }
  }

  close() {
    this.closed = true;
    this.source?.close();
    this.source = null;
  }

  private listen() {
    this.source?.close();
    const source = new EventSource(`${sessionPath(this.id)}/stream?after=${this.cursor}&extensions=true`);
    this.source = source;
    source.onopen = () => (this.connected.value = true);
    source.onerror = () => {
      this.connected.value = false;
      // CONNECTING: the browser retries by itself (with Last-Event-ID). CLOSED: the server refused (a 404 for a
      // deleted session, a 400 for a stale cursor): look at the session again before deciding.
      if (source.readyState === EventSource.CLOSED && !this.closed) {
        setTimeout(() => this.recover(), 1000);
      }
    };
    source.onmessage = () => {
      // `[DONE]`: the session was deleted or the server is stopping; the reconnect that follows tells which.
    };
    const handle = (e: MessageEvent) => {
      let event: StreamEvent;
      try {
        event = JSON.parse(e.data);
      } catch {
        return;
      }
      this.apply(event);
    };
    for (const type of HANDLED) source.addEventListener(type, handle as EventListener);
  }

  private async recover() {
    if (this.closed) return;
    try {
      await get(`${sessionPath(this.id)}?include_items=false`);
      this.listen();
    } catch (e) {
      if (e instanceof ApiError && e.status === 404) {
        this.gone.value = true;
        this.source?.close();
      } else {
        setTimeout(() => this.recover(), 3000);
      }
    }
  }

  private upsert(entry: Entry) {
    this.order.set(entry.id, entry);
    this.entries.value = [...this.order.values()];
  }

  private notice(seq: number | null, tone: 'info' | 'error' | 'denied', text: string, detail?: string) {
    this.upsert({ kind: 'notice', id: `notice-${seq ?? Date.now()}`, tone, text, detail });
  }

  /** Deltas arrive faster than frames: they are drawn once per animation frame. */
  private flushSoon() {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    requestAnimationFrame(() => {
      this.flushScheduled = false;
      const current = this.streaming.value;
      if (!current) return;
      this.streaming.value = {
        ...current,
        text: current.text + this.pendingText,
        reasoning: current.reasoning + this.pendingReasoning,
      };
      this.pendingText = '';
      this.pendingReasoning = '';
    });
  }

  apply(event: StreamEvent) {
    const seq = event.sequence_number;
    if (seq != null) {
      if (seq <= this.cursor) return; // already seen (a replay after reconnect)
      this.cursor = seq;
    }
    switch (event.type) {
      case 'session.input.consumed': {
        const d = event.data ?? {};
        const item: Item = { ...(d.data ?? {}), id: d.item_id, type: d.type };
        if (item.id) this.upsert({ kind: 'item', id: item.id, item });
        break;
      }
      case 'session.status':
        batch(() => {
          this.status.value = event.status;
          this.error.value = event.status === 'failed' ? (event.error ?? this.error.value) : null;
        });
        break;
      case 'session.title':
        this.title.value = event.title;
        break;
      case 'response.created':
        this.pendingText = '';
        this.pendingReasoning = '';
        this.streaming.value = { responseId: event.response?.id ?? '', text: '', reasoning: '' };
        break;
      case 'response.output_text.delta':
        if (!this.streaming.value) this.streaming.value = { responseId: '', text: '', reasoning: '' };
        this.pendingText += event.delta ?? '';
        this.flushSoon();
        break;
      case 'response.reasoning_text.delta':
      case 'response.reasoning_summary_text.delta':
        if (!this.streaming.value) this.streaming.value = { responseId: '', text: '', reasoning: '' };
        this.pendingReasoning += event.delta ?? '';
        this.flushSoon();
        break;
      case 'response.output_item.done': {
        const item = event.item as Item;
        if (!item?.id) break;
        this.upsert({ kind: 'item', id: item.id, item });
        if (item.type === 'message' && item.role === 'assistant' && this.streaming.value) {
          // The streamed text now lives in the item.
          this.pendingText = '';
          this.streaming.value = { ...this.streaming.value, text: '' };
        }
        if (item.type === 'reasoning' && this.streaming.value) {
          this.pendingReasoning = '';
          this.streaming.value = { ...this.streaming.value, reasoning: '' };
        }
        break;
      }
      case 'response.completed':
      case 'response.cancelled':
        this.streaming.value = null;
        this.usageVersion.value++;
        break;
      case 'response.incomplete':
        this.streaming.value = null;
        break;
      case 'response.failed': {
        this.streaming.value = null;
        const err = event.response?.error;
        this.notice(seq, 'error', 'Something went wrong', err ? `${err.code}: ${err.message}` : undefined);
        break;
      }
      case 'response.error':
        this.notice(seq, 'error', `Error from the ${event.source ?? 'harness'}`, event.error?.message);
        break;
      case 'response.retry':
        this.notice(
          seq,
          'info',
          `Retrying (${event.attempt}/${event.max_attempts}) in ${event.delay_seconds}s`,
          event.error?.message,
        );
        break;
      case 'response.policy_denied':
        this.notice(seq, 'denied', `Denied by policy (${event.phase})`, event.reason);
        break;
      case 'response.compaction.in_progress':
        this.notice(seq, 'info', 'Compacting the earlier conversation…');
        break;
      case 'response.compaction.failed':
        this.notice(seq, 'error', 'Compaction did not happen');
        break;
      case 'session.interrupted':
        this.streaming.value = null;
        this.notice(seq, 'info', 'Interrupted');
        break;
      case 'response.elicitation_request': {
        const e = event as unknown as Elicitation;
        this.pending.value = [...this.pending.value.filter((p) => p.elicitation_id !== e.elicitation_id), e];
        break;
      }
      case 'response.elicitation_resolved':
        this.pending.value = this.pending.value.filter((p) => p.elicitation_id !== event.elicitation_id);
        break;
      case 'session.created':
      case 'session.child_session.updated':
        this.childrenVersion.value++;
        break;
      case 'session.resource.created':
      case 'session.resource.deleted':
      case 'response.output_file.done':
        this.filesVersion.value++;
        break;
      case 'session.comment.created':
      case 'session.comment.updated':
      case 'session.comment.deleted':
        this.commentsVersion.value++;
        break;
      case 'session.usage':
        this.usageVersion.value++;
        break;
    }
  }
}

const HANDLED = [
  'session.input.consumed',
  'session.status',
  'session.title',
  'session.interrupted',
  'session.created',
  'session.child_session.updated',
  'session.resource.created',
  'session.resource.deleted',
  'session.comment.created',
  'session.comment.updated',
  'session.comment.deleted',
  'session.usage',
  'response.created',
  'response.output_text.delta',
  'response.reasoning_text.delta',
  'response.reasoning_summary_text.delta',
  'response.output_item.done',
  'response.output_file.done',
  'response.completed',
  'response.cancelled',
  'response.incomplete',
  'response.failed',
  'response.error',
  'response.retry',
  'response.policy_denied',
  'response.elicitation_request',
  'response.elicitation_resolved',
  'response.compaction.in_progress',
  'response.compaction.failed',
];
