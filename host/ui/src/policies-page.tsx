// The server's policies (/policies), read-only: the server-wide defaults every session is judged by, and the
// builtins a config may name.
import { useFetch } from './use-fetch';

interface Builtin {
  handler?: string;
  name?: string;
  description?: string;
}

export function PoliciesPage() {
  const server = useFetch<{ data: Array<{ name?: string; handler?: string; component?: string }> }>('/v1/policies').data?.data ?? [];
  const registry = useFetch<{ data: Builtin[] }>('/v1/policy-registry').data?.data ?? [];
  return (
    <main class="page" aria-labelledby="page-title">
      <h1 id="page-title">Policies</h1>
      <h2>Server-wide</h2>
      {server.length === 0 ? (
        <p class="subtle">None (start the server with --policies FILE to judge every session by some).</p>
      ) : (
        <ul class="plain">
          {server.map((p, i) => (
            <li key={i}>
              <strong>{p.name}</strong> <code>{p.handler ?? p.component}</code>
            </li>
          ))}
        </ul>
      )}
      <h2>Builtins</h2>
      <ul class="plain">
        {registry.map((p) => (
          <li key={p.handler ?? p.name}>
            <code>{p.handler ?? p.name}</code>
            {p.description && <p class="subtle">{p.description}</p>}
          </li>
        ))}
      </ul>
    </main>
  );
}
