// The token form, shown when the server was started with --auth-token and this browser has no cookie yet: the
// token is checked by the server and kept as an HttpOnly cookie (this page's script never stores it).
import { useState } from 'preact/hooks';

import { errorText, needsToken, post } from './api';

export function Login() {
  const [token, setToken] = useState('');
  const [error, setError] = useState<string | null>(null);
  const submit = async (e: Event) => {
    e.preventDefault();
    setError(null);
    try {
      await post('/v1/auth/cookie', { token });
      needsToken.value = false;
      location.reload();
    } catch (err) {
      needsToken.value = true;
      setError(errorText(err));
    }
  };
  return (
    <main class="page login" aria-labelledby="page-title">
      <h1 id="page-title">This server needs its token</h1>
      <p>It was started with an auth token (<code>--auth-token</code>). Enter it once; this browser keeps it.</p>
      <form onSubmit={submit}>
        <label for="token">Auth token</label>
        <input id="token" type="password" autocomplete="current-password" value={token} onInput={(e) => setToken((e.target as HTMLInputElement).value)} />
        {error && <p class="error-text" role="alert">{error}</p>}
        <button type="submit" class="primary" disabled={!token}>
          Continue
        </button>
      </form>
    </main>
  );
}
