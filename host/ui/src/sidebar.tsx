// Every page's sidebar: new session, inbox (with how many approvals wait), policies, and the sessions by latest
// activity with their state — live from the server's feed.
import { feedConnected, topLevel, waiting } from './feed';
import { route, sessionUrl } from './router';
import { StatusMark } from './status';

export function Sidebar() {
  const current = route.value;
  const currentId = current.page === 'session' ? current.id : null;
  const inbox = waiting.value.length;
  return (
    <nav class="sidebar" aria-label="Sessions">
      <div class="brand">
        <img src="/favicon.svg" alt="" width={22} height={22} /> omnigent
      </div>
      <a class="button primary" href="/">
        New session
      </a>
      <a href="/inbox" class="nav-link" aria-current={current.page === 'inbox' ? 'page' : undefined}>
        Inbox {inbox > 0 && <span class="count" aria-label={`${inbox} waiting`}>{inbox}</span>}
      </a>
      <a href="/policies" class="nav-link" aria-current={current.page === 'policies' ? 'page' : undefined}>
        Policies
      </a>
      <h2 class="sidebar-heading">Sessions</h2>
      {!feedConnected.value && <p class="subtle" role="status">Connecting…</p>}
      <ul class="session-list">
        {topLevel.value.map((s) => (
          <li key={s.id} data-session-id={s.id}>
            <a href={sessionUrl(s.id)} aria-current={s.id === currentId ? 'page' : undefined}>
              <StatusMark status={s.status} waiting={s.pending_elicitations_count > 0} />
              <span class="session-title">{s.title ?? s.agent_name ?? s.id.slice(0, 13)}</span>
            </a>
          </li>
        ))}
      </ul>
    </nav>
  );
}
