// Every approval waiting anywhere (/inbox), answerable here; and one approval alone on its deep-linkable page
// (/approve/<session>/<elicitation>).
import { ApprovalCard } from './approval';
import { sessionPath } from './api';
import { waiting } from './feed';
import { pendingList } from './session';
import { sessionUrl } from './router';
import type { Elicitation, Snapshot } from './types';
import { useFetch } from './use-fetch';

export function Inbox() {
  const sessions = waiting.value;
  return (
    <main class="page" aria-labelledby="page-title">
      <h1 id="page-title">Inbox</h1>
      {sessions.length === 0 && <p class="subtle">Nothing waits for you.</p>}
      {sessions.map((s) => (
        <WaitingSession key={`${s.id}-${s.pending_elicitations_count}-${s.updated_at}`} id={s.id} title={s.title ?? s.agent_name ?? s.id} />
      ))}
    </main>
  );
}

function WaitingSession({ id, title }: { id: string; title: string }) {
  const snap = useFetch<Snapshot>(`${sessionPath(id)}?include_items=false`).data;
  const pending = snap ? pendingList(snap.pending_elicitations) : [];
  return (
    <section class="inbox-entry" aria-label={`Waiting: ${title}`}>
      <h2>
        <a href={sessionUrl(id)}>{title}</a> <span class="subtle">{snap?.agent_name}</span>
      </h2>
      {pending.map((e) => (
        <ApprovalCard key={e.elicitation_id} session={id} elicitation={e} />
      ))}
    </section>
  );
}

export function ApprovePage({ session, elicitation }: { session: string; elicitation: string }) {
  const { data, error } = useFetch<Elicitation & { status?: string }>(
    `${sessionPath(session)}/elicitations/${encodeURIComponent(elicitation)}`,
    [waiting.value.length],
  );
  return (
    <main class="page" aria-labelledby="page-title">
      <h1 id="page-title">Approval</h1>
      {error && <p class="error-text" role="alert">{error}</p>}
      {data && data.status === 'resolved' && <p role="status">This request was answered.</p>}
      {data && data.status !== 'resolved' && (
        <ApprovalCard session={session} elicitation={{ ...data, elicitation_id: elicitation }} />
      )}
      <p>
        <a href={sessionUrl(session)}>Open the session</a>
      </p>
    </main>
  );
}
