// The session's terminals (a native harness's CLI in tmux): attach in xterm.js over the terminal WebSocket —
// binary frames both ways, a text `{"type":"resize"}` when the panel changes size. xterm loads only when a
// terminal opens, so the main bundle stays small.
import { useEffect, useRef, useState } from 'preact/hooks';

import { del, errorText, sessionPath } from './api';
import type { LiveSession } from './session';
import type { ListPage, Terminal } from './types';
import { useFetch } from './use-fetch';

export function TerminalsPanel({ live }: { live: LiveSession }) {
  const [version, setVersion] = useState(0);
  const [open, setOpen] = useState<{ id: string; readOnly: boolean } | null>(null);
  const [error, setError] = useState<string | null>(null);
  const { data } = useFetch<ListPage<Terminal>>(`${sessionPath(live.id)}/resources/terminals`, [
    version,
    live.filesVersion.value,
    live.status.value,
  ]);
  const terminals = data?.data ?? [];
  return (
    <div class="panel-body">
      {error && <p class="error-text" role="alert">{error}</p>}
      {terminals.length === 0 && <p class="subtle">No terminals. A native harness (claude-native, codex-native) runs its CLI in one.</p>}
      <ul class="plain">
        {terminals.map((t) => (
          <li key={t.id} data-terminal-id={t.id}>
            <code>{t.name ?? t.id}</code> <span class="subtle">{t.status}</span>{' '}
            <button type="button" class="subtle" onClick={() => setOpen({ id: t.id, readOnly: false })}>
              Attach
            </button>
            <button type="button" class="subtle" onClick={() => setOpen({ id: t.id, readOnly: true })}>
              Watch (read-only)
            </button>
            <button
              type="button"
              class="subtle"
              onClick={() =>
                del(`${sessionPath(live.id)}/resources/terminals/${encodeURIComponent(t.id)}`)
                  .then(() => {
                    setOpen(null);
                    setVersion((v) => v + 1);
                  })
                  .catch((e) => setError(errorText(e)))
              }
            >
              Close terminal
            </button>
          </li>
        ))}
      </ul>
      {open && <TerminalView key={`${open.id}-${open.readOnly}`} session={live.id} terminal={open.id} readOnly={open.readOnly} />}
    </div>
  );
}

function TerminalView({ session, terminal, readOnly }: { session: string; terminal: string; readOnly: boolean }) {
  const host = useRef<HTMLDivElement>(null);
  const [state, setState] = useState('connecting');
  useEffect(() => {
    let disposed = false;
    let cleanup = () => {};
    (async () => {
      const [{ Terminal }, { FitAddon }] = await Promise.all([import('@xterm/xterm'), import('@xterm/addon-fit')]);
      if (disposed || !host.current) return;
      const term = new Terminal({ convertEol: false, cursorBlink: !readOnly, disableStdin: readOnly, fontSize: 13 });
      const fit = new FitAddon();
      term.loadAddon(fit);
      term.open(host.current);
      fit.fit();
      const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
      const url = `${scheme}://${location.host}${sessionPath(session)}/resources/terminals/${encodeURIComponent(terminal)}/attach${readOnly ? '?read_only=true' : ''}`;
      const socket = new WebSocket(url);
      socket.binaryType = 'arraybuffer';
      const resize = () => {
        fit.fit();
        if (socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify({ type: 'resize', cols: term.cols, rows: term.rows }));
      };
      socket.onopen = () => {
        setState(readOnly ? 'watching (read-only)' : 'attached');
        resize();
      };
      socket.onmessage = (e) => term.write(typeof e.data === 'string' ? e.data : new Uint8Array(e.data));
      socket.onclose = (e) => setState(e.code === 4404 ? 'the terminal ended' : 'disconnected');
      const input = term.onData((d) => {
        if (!readOnly && socket.readyState === WebSocket.OPEN) socket.send(new TextEncoder().encode(d));
      });
      const observer = new ResizeObserver(resize);
      observer.observe(host.current);
      (window as unknown as { omnigentTerminal?: unknown }).omnigentTerminal = term;
      cleanup = () => {
        observer.disconnect();
        input.dispose();
        socket.close();
        term.dispose();
      };
    })().catch((e) => setState(`cannot open the terminal: ${errorText(e)}`));
    return () => {
      disposed = true;
      cleanup();
    };
  }, [session, terminal, readOnly]);
  return (
    <div class="terminal-view">
      <p class="subtle" role="status">
        {state}
      </p>
      <div ref={host} class="xterm-host" aria-label="Terminal" />
    </div>
  );
}
