// Client-side routes. The server answers every non-API path with index.html, so each of these is a deep link that
// survives a refresh: /, /c/<session>, /approve/<session>/<elicitation>, /inbox, /policies.
import { signal } from '@preact/signals';

export type Route =
  | { page: 'new' }
  | { page: 'session'; id: string; item?: string }
  | { page: 'approve'; session: string; elicitation: string }
  | { page: 'inbox' }
  | { page: 'policies' }
  | { page: 'missing'; path: string };

function parse(path: string, hash: string): Route {
  const parts = path.split('/').filter(Boolean).map(decodeURIComponent);
  if (parts.length === 0) return { page: 'new' };
  if (parts[0] === 'c' && parts.length === 2) return { page: 'session', id: parts[1], item: hash.slice(1) || undefined };
  if (parts[0] === 'approve' && parts.length === 3) return { page: 'approve', session: parts[1], elicitation: parts[2] };
  if (parts[0] === 'inbox' && parts.length === 1) return { page: 'inbox' };
  if (parts[0] === 'policies' && parts.length === 1) return { page: 'policies' };
  return { page: 'missing', path };
}

export const route = signal<Route>(parse(location.pathname, location.hash));

export function navigate(path: string, replace = false) {
  if (replace) history.replaceState(null, '', path);
  else history.pushState(null, '', path);
  route.value = parse(location.pathname, location.hash);
  window.scrollTo(0, 0);
}

addEventListener('popstate', () => {
  route.value = parse(location.pathname, location.hash);
});

/** A same-origin link click goes through the router instead of reloading the page. */
export function onLinkClick(event: MouseEvent) {
  const anchor = (event.target as HTMLElement).closest('a');
  if (!anchor || anchor.target || anchor.hasAttribute('download') || event.defaultPrevented) return;
  if (event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
  const url = new URL(anchor.href, location.href);
  if (url.origin !== location.origin || url.pathname.startsWith('/v1/')) return;
  if (url.pathname === location.pathname && url.hash) return; // an anchor on this page: the browser scrolls
  event.preventDefault();
  navigate(url.pathname + url.hash);
}

export const sessionUrl = (id: string) => `/c/${encodeURIComponent(id)}`;
