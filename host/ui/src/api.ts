// The server's HTTP API as the UI uses it: JSON in and out, the API's error envelope turned into an Error whose
// message is the server's own sentence, and a signal that flips when the server asks for its token.
import { signal } from '@preact/signals';

/** True once a request was refused for want of the auth token: the app shows the token form. */
export const needsToken = signal(false);

export class ApiError extends Error {
  constructor(public status: number, public code: string, message: string) {
    super(message);
  }
}

async function fail(response: Response): Promise<never> {
  let code = 'http_' + response.status;
  let message = `${response.status} ${response.statusText}`;
  try {
    const body = await response.json();
    if (body?.error) {
      code = body.error.code ?? code;
      message = body.error.message ?? message;
    }
  } catch {
    // Not the API's envelope (a proxy's page, say): keep the status line.
  }
  if (response.status === 401) needsToken.value = true;
  throw new ApiError(response.status, code, message);
}

export async function request<T>(method: string, path: string, body?: unknown): Promise<T> {
  const init: RequestInit = { method, headers: {} };
  if (body instanceof FormData) {
    init.body = body;
  } else if (body !== undefined) {
    init.body = JSON.stringify(body);
    (init.headers as Record<string, string>)['content-type'] = 'application/json';
  }
  const response = await fetch(path, init);
  if (!response.ok) return fail(response);
  if (response.status === 204) return undefined as T;
  const type = response.headers.get('content-type') ?? '';
  return (type.includes('json') ? response.json() : response.text()) as Promise<T>;
}

export const get = <T>(path: string) => request<T>('GET', path);
export const post = <T>(path: string, body?: unknown) => request<T>('POST', path, body ?? {});
export const patch = <T>(path: string, body: unknown) => request<T>('PATCH', path, body);
export const del = <T>(path: string) => request<T>('DELETE', path);

export const sessionPath = (id: string) => `/v1/sessions/${encodeURIComponent(id)}`;

export function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
