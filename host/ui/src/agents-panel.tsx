// The session's sub-agents as a tree: each child session with its live status (from the server's feed), linked to
// its own page; grandchildren nest under their parent.
import { sessionPath } from './api';
import { sessions } from './feed';
import type { LiveSession } from './session';
import type { ChildSession, ListPage } from './types';
import { useFetch } from './use-fetch';
import { StatusMark } from './status';

export function AgentsPanel({ live }: { live: LiveSession }) {
  return (
    <div class="panel-body">
      <Children id={live.id} version={live.childrenVersion.value} top />
    </div>
  );
}

function Children({ id, version, top }: { id: string; version: number; top?: boolean }) {
  const { data } = useFetch<ListPage<ChildSession>>(`${sessionPath(id)}/child_sessions`, [version]);
  const children = data?.data ?? [];
  if (children.length === 0) return top ? <p class="subtle">No sub-agents have run in this session.</p> : null;
  return (
    <ul class="tree" role={top ? 'tree' : 'group'} aria-label={top ? 'Sub-agents' : undefined}>
      {children.map((c) => {
        const live = sessions.value.get(c.id);
        const status = live?.status ?? c.status ?? 'idle';
        return (
          <li key={c.id} role="treeitem" data-child-id={c.id}>
            <StatusMark status={status} waiting={(live?.pending_elicitations_count ?? 0) > 0} />{' '}
            <a href={`/c/${c.id}`}>{c.title ?? c.sub_agent_name ?? c.agent_name ?? c.id}</a>{' '}
            <span class="subtle" data-child-status>
              {status}
            </span>
            <Children id={c.id} version={version} />
          </li>
        );
      })}
    </ul>
  );
}
