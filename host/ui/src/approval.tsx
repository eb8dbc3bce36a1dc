// A pending approval: what a policy asks a human, with its name, phase and preview, answered Approve / Deny.
import { useState } from 'preact/hooks';

import { errorText, post, sessionPath } from './api';
import type { Elicitation } from './types';

export function ApprovalCard({ session, elicitation, onAnswered }: {
  session: string;
  elicitation: Elicitation;
  onAnswered?: (action: string) => void;
}) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const p = elicitation.params ?? {};
  const answer = async (action: 'accept' | 'decline') => {
    setBusy(true);
    setError(null);
    try {
      // A sub-agent's question is answered through the session that shows it; the server routes it.
      await post(`${sessionPath(session)}/elicitations/${encodeURIComponent(elicitation.elicitation_id)}/resolve`, {
        action,
      });
      onAnswered?.(action);
    } catch (e) {
      setError(errorText(e));
      setBusy(false);
    }
  };
  return (
    <section class="approval" role="group" aria-label="Approval required" data-elicitation={elicitation.elicitation_id}>
      <header>
        <strong>Approval required</strong>
        {p.policy_name && <span class="tag">policy: {p.policy_name}</span>}
        {p.phase && <span class="tag">phase: {p.phase}</span>}
        {p.tool_name && <span class="tag">tool: {p.tool_name}</span>}
      </header>
      {p.message && <p class="approval-message">{p.message}</p>}
      {p.content_preview && <pre class="preview">{p.content_preview}</pre>}
      <div class="actions">
        <button type="button" class="primary" disabled={busy} onClick={() => answer('accept')}>
          Approve
        </button>
        <button type="button" class="danger" disabled={busy} onClick={() => answer('decline')}>
          Deny
        </button>
        <a class="subtle" href={`/approve/${encodeURIComponent(session)}/${encodeURIComponent(elicitation.elicitation_id)}`}>
          Link to this approval
        </a>
      </div>
      {error && <p class="error-text" role="alert">{error}</p>}
    </section>
  );
}
