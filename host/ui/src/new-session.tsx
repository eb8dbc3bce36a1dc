// Start a session (/): from a registered agent, or from a config pasted as YAML (as `omnigent run -f` reads it),
// with a first message that starts its first turn.
import { useState } from 'preact/hooks';

import { errorText, post } from './api';
import { remember } from './feed';
import { navigate, sessionUrl } from './router';
import type { Agent, ListPage, Snapshot } from './types';
import { useFetch } from './use-fetch';

const EXAMPLE = `name: helper
prompt: You are a helpful assistant.
executor:
  harness: agent
  model: gpt-4o-mini
`;

export function NewSession() {
  const agents = useFetch<ListPage<Agent>>('/v1/agents?limit=100').data?.data ?? [];
  const [source, setSource] = useState<'agent' | 'yaml' | null>(null);
  const [agent, setAgent] = useState('');
  const [yaml, setYaml] = useState(EXAMPLE);
  const [message, setMessage] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const mode = source ?? (agents.length > 0 ? 'agent' : 'yaml');
  const chosen = agent || agents[0]?.id || '';

  const start = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const text = message.trim();
      const created = await post<Snapshot>('/v1/sessions', {
        ...(mode === 'agent' ? { agent_id: chosen } : { config_yaml: yaml }),
        ...(text ? { initial_items: [{ type: 'message', data: { role: 'user', content: text } }] } : {}),
      });
      remember({ ...created, pending_elicitations_count: 0 });
      navigate(sessionUrl(created.id));
    } catch (err) {
      setError(errorText(err));
      setBusy(false);
    }
  };

  return (
    <main class="page new-session" aria-labelledby="page-title">
      <h1 id="page-title">What should we build?</h1>
      <form onSubmit={start}>
        <fieldset>
          <legend>Agent</legend>
          <label>
            <input type="radio" name="source" checked={mode === 'agent'} disabled={agents.length === 0} onChange={() => setSource('agent')} />
            A registered agent {agents.length === 0 && <span class="subtle">(none registered: POST /v1/agents)</span>}
          </label>
          <label>
            <input type="radio" name="source" checked={mode === 'yaml'} onChange={() => setSource('yaml')} /> A session config (YAML)
          </label>
        </fieldset>
        {mode === 'agent' ? (
          <>
            <label for="agent">Agent</label>
            <select id="agent" value={chosen} onChange={(e) => setAgent((e.target as HTMLSelectElement).value)}>
              {agents.map((a) => (
                <option key={a.id} value={a.id}>
                  {a.name}
                  {a.config?.description ? ` — ${a.config.description}` : ''}
                </option>
              ))}
            </select>
          </>
        ) : (
          <>
            <label for="config">Session config</label>
            <textarea id="config" rows={10} spellcheck={false} class="code" value={yaml} onInput={(e) => setYaml((e.target as HTMLTextAreaElement).value)} />
          </>
        )}
        <label for="first-message">First message</label>
        <textarea
          id="first-message"
          rows={4}
          placeholder="Describe the task…"
          value={message}
          onInput={(e) => setMessage((e.target as HTMLTextAreaElement).value)}
          onKeyDown={(e) => {
            if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
              e.preventDefault();
              (e.target as HTMLTextAreaElement).form?.requestSubmit();
            }
          }}
        />
        {error && <p class="error-text" role="alert">{error}</p>}
        <button type="submit" class="primary" disabled={busy}>
          {busy ? 'Starting…' : 'Start session'}
        </button>
      </form>
    </main>
  );
}
