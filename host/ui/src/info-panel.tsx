// What this session is: its id, agent, harness and model, its policies in judging order, and what it cost.
import { sessionPath } from './api';
import type { LiveSession } from './session';
import { useFetch } from './use-fetch';

interface PolicyRow {
  name?: string;
  handler?: string;
  source?: string;
  phases?: string[];
}

export function InfoPanel({ live }: { live: LiveSession }) {
  const snap = live.snapshot.value;
  const usage = useFetch<{ usage_by_model?: Record<string, Record<string, number>> }>(
    `${sessionPath(live.id)}?include_items=false`,
    [live.usageVersion.value],
  ).data?.usage_by_model ?? snap?.usage_by_model ?? {};
  const policies = useFetch<{ data: PolicyRow[] }>(`${sessionPath(live.id)}/policies`).data?.data ?? [];
  if (!snap) return null;
  const models = Object.entries(usage);
  return (
    <div class="panel-body">
      <dl class="facts">
        <dt>Session</dt>
        <dd>
          <code>{snap.id}</code>
        </dd>
        <dt>Agent</dt>
        <dd>{snap.agent_name ?? snap.agent_id ?? '—'}</dd>
        <dt>Harness</dt>
        <dd>{snap.harness ?? '—'}</dd>
        {snap.llm_model && (
          <>
            <dt>Model</dt>
            <dd>{snap.llm_model}</dd>
          </>
        )}
        {snap.parent_session_id && (
          <>
            <dt>Parent</dt>
            <dd>
              <a href={`/c/${snap.parent_session_id}`}>{snap.parent_session_id}</a>
            </dd>
          </>
        )}
      </dl>
      <h3>Policies</h3>
      {policies.length === 0 ? (
        <p class="subtle">No policies.</p>
      ) : (
        <ul class="plain">
          {policies.map((p, i) => (
            <li key={i}>
              <strong>{p.name ?? p.handler}</strong> <span class="tag">{p.source ?? 'session'}</span>
              {p.handler && p.handler !== p.name && <div class="subtle">{p.handler}</div>}
            </li>
          ))}
        </ul>
      )}
      <h3>Usage</h3>
      {models.length === 0 ? (
        <p class="subtle">No model calls yet.</p>
      ) : (
        <table class="usage">
          <thead>
            <tr>
              <th scope="col">Model</th>
              <th scope="col">Input</th>
              <th scope="col">Output</th>
              <th scope="col">Cost</th>
            </tr>
          </thead>
          <tbody>
            {models.map(([model, u]) => (
              <tr key={model}>
                <td>{model}</td>
                <td>{u.input_tokens ?? 0}</td>
                <td>{u.output_tokens ?? 0}</td>
                <td>{u.total_cost_usd != null ? `$${u.total_cost_usd.toFixed(4)}` : '—'}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </div>
  );
}
