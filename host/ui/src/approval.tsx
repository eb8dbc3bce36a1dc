// A pending approval: what a policy asks a human, with its name, phase and preview, answered Approve / Deny. An MCP
// server's question may ask for fields (its `requestedSchema`): they are shown as a form and sent with Approve.
import { useState } from 'preact/hooks';

import { errorText, post, sessionPath } from './api';
import type { Elicitation, SchemaField } from './types';

type Value = string | number | boolean | string[];

export function ApprovalCard({ session, elicitation, onAnswered }: {
  session: string;
  elicitation: Elicitation;
  onAnswered?: (action: string) => void;
}) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [values, setValues] = useState<Record<string, Value>>({});
  const p = elicitation.params ?? {};
  const fields = Object.entries(p.requestedSchema?.properties ?? {});
  const required = new Set(p.requestedSchema?.required ?? []);
  const answer = async (action: 'accept' | 'decline') => {
    const missing = fields.find(([name]) => required.has(name) && values[name] === undefined);
    if (action === 'accept' && missing) {
      setError(`${missing[1].title ?? missing[0]} is required`);
      return;
    }
    setBusy(true);
    setError(null);
    try {
      // A sub-agent's question is answered through the session that shows it; the server routes it.
      const body: Record<string, unknown> = { action };
      if (action === 'accept' && Object.keys(values).length > 0) body.content = values;
      await post(`${sessionPath(session)}/elicitations/${encodeURIComponent(elicitation.elicitation_id)}/resolve`, body);
      onAnswered?.(action);
    } catch (e) {
      setError(errorText(e));
      setBusy(false);
    }
  };
  const set = (name: string, value: Value | undefined) =>
    setValues((v) => {
      const next = { ...v };
      if (value === undefined) delete next[name];
      else next[name] = value;
      return next;
    });
  return (
    <section class="approval" role="group" aria-label="Approval required" data-elicitation={elicitation.elicitation_id}>
      <header>
        <strong>{p.mcp_server ? `Question from MCP server ${p.mcp_server}` : 'Approval required'}</strong>
        {p.policy_name && !p.mcp_server && <span class="tag">policy: {p.policy_name}</span>}
        {p.phase && <span class="tag">phase: {p.phase}</span>}
        {p.tool_name && <span class="tag">tool: {p.tool_name}</span>}
      </header>
      {p.message && <p class="approval-message">{p.message}</p>}
      {p.content_preview && <pre class="preview">{p.content_preview}</pre>}
      {fields.length > 0 && (
        <div class="approval-fields">
          {fields.map(([name, field]) => (
            <Field key={name} name={name} field={field} required={required.has(name)} disabled={busy}
              value={values[name]} onChange={(v) => set(name, v)} />
          ))}
        </div>
      )}
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

/// One field a question asks for: a checkbox, a choice, a number or a line of text.
function Field({ name, field, required, disabled, value, onChange }: {
  name: string;
  field: SchemaField;
  required: boolean;
  disabled: boolean;
  value: Value | undefined;
  onChange: (v: Value | undefined) => void;
}) {
  const label = `${field.title ?? name}${required ? ' *' : ''}`;
  const choices = field.oneOf?.map((o) => ({ value: o.const, title: o.title ?? String(o.const) }))
    ?? field.enum?.map((e, i) => ({ value: e, title: field.enumNames?.[i] ?? String(e) }));
  let input;
  if (field.type === 'boolean') {
    input = <input type="checkbox" checked={value === true} disabled={disabled}
      onChange={(e) => onChange((e.target as HTMLInputElement).checked)} />;
  } else if (choices) {
    input = (
      <select disabled={disabled} value={value === undefined ? '' : String(value)}
        onChange={(e) => onChange(choices.find((c) => String(c.value) === (e.target as HTMLSelectElement).value)?.value)}>
        <option value="">—</option>
        {choices.map((c) => <option key={String(c.value)} value={String(c.value)}>{c.title}</option>)}
      </select>
    );
  } else if (field.type === 'number' || field.type === 'integer') {
    input = <input type="number" step={field.type === 'integer' ? 1 : 'any'} disabled={disabled}
      min={field.minimum} max={field.maximum} value={value === undefined ? '' : String(value)}
      onInput={(e) => {
        const raw = (e.target as HTMLInputElement).value;
        onChange(raw === '' ? undefined : Number(raw));
      }} />;
  } else {
    input = <input type="text" disabled={disabled} value={value === undefined ? '' : String(value)}
      onInput={(e) => {
        const raw = (e.target as HTMLInputElement).value;
        onChange(raw === '' ? undefined : raw);
      }} />;
  }
  return (
    <label class="approval-field">
      <span>{label}</span>
      {input}
      {field.description && <small>{field.description}</small>}
    </label>
  );
}
