// Every session as a list shows it, kept live by the server's feed (GET /v1/sessions/feed): the sidebar, the
// inbox count and the sub-agent tree read from here. The list is read after the feed says it is subscribed, and
// again whenever the feed says this tab fell behind, so no change falls between the two.
import { computed, signal } from '@preact/signals';

import { get } from './api';
import type { ListPage, SessionSummary } from './types';

export const sessions = signal<Map<string, SessionSummary>>(new Map());
export const feedConnected = signal(false);
/** Sessions deleted while this tab was open (an open page says so). */
export const deleted = signal<Set<string>>(new Set());

const updated = (s: SessionSummary) => (typeof s.updated_at === 'number' ? s.updated_at : Date.parse(s.updated_at));

/** Top-level sessions, newest activity first. */
export const topLevel = computed(() =>
  [...sessions.value.values()].filter((s) => s.kind !== 'sub_agent' && !s.archived).sort((a, b) => updated(b) - updated(a)),
);

/** Sessions (any kind) waiting for an answer. */
export const waiting = computed(() => [...sessions.value.values()].filter((s) => s.pending_elicitations_count > 0));

function put(summary: SessionSummary) {
  const next = new Map(sessions.value);
  next.set(summary.id, summary);
  sessions.value = next;
}

function remove(id: string) {
  const next = new Map(sessions.value);
  next.delete(id);
  sessions.value = next;
  deleted.value = new Set(deleted.value).add(id);
}

async function relist() {
  const all = new Map<string, SessionSummary>();
  for (const kind of ['default', 'sub_agent']) {
    const page = await get<ListPage<SessionSummary>>(`/v1/sessions?kind=${kind}&limit=200&sort_by=updated_at`);
    for (const s of page.data) all.set(s.id, s);
  }
  sessions.value = all;
}

let source: EventSource | null = null;

export function startFeed() {
  if (source) return;
  source = new EventSource('/v1/sessions/feed');
  const resync = () => relist().catch(() => undefined);
  source.addEventListener('feed.ready', () => {
    feedConnected.value = true;
    resync();
  });
  source.addEventListener('feed.resync', resync);
  source.addEventListener('session.summary', (e) => put(JSON.parse((e as MessageEvent).data)));
  source.addEventListener('session.deleted', (e) => remove(JSON.parse((e as MessageEvent).data).id));
  // The browser reconnects on its own; feed.ready then lists again.
  source.addEventListener('error', () => {
    feedConnected.value = false;
  });
}

export function stopFeed() {
  source?.close();
  source = null;
}

/** Lists a session the page just created before the feed says so. The feed stays the authority: a summary it
 * already delivered (the new session may have failed before the create's answer arrived) is newer than this one. */
export function remember(summary: SessionSummary) {
  if (!sessions.value.has(summary.id)) put(summary);
}
