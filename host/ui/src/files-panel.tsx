// The session's files: uploads and what the agent wrote, newest first, each downloadable (the browser's own
// download, so it works with the cookie a token login sets) and deletable.
import { useState } from 'preact/hooks';

import { del, errorText, sessionPath } from './api';
import type { LiveSession } from './session';
import type { FileResource } from './types';
import { useFetch } from './use-fetch';

function size(bytes?: number) {
  if (bytes == null) return '';
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}

export function FilesPanel({ live }: { live: LiveSession }) {
  const [error, setError] = useState<string | null>(null);
  const { data, error: loadError } = useFetch<{ data: FileResource[] }>(`${sessionPath(live.id)}/resources/files`, [
    live.filesVersion.value,
  ]);
  const files = data?.data ?? [];
  return (
    <div class="panel-body">
      {(loadError || error) && <p class="error-text" role="alert">{loadError ?? error}</p>}
      {files.length === 0 ? (
        <p class="subtle">No files. Attach one from the message box; files the agent writes appear here.</p>
      ) : (
        <ul class="plain files">
          {files.map((f) => {
            const name = f.name ?? f.metadata?.filename ?? f.id;
            return (
              <li key={f.id} data-file-id={f.id}>
                <a href={`${sessionPath(live.id)}/resources/files/${encodeURIComponent(f.id)}/content`} download={name}>
                  {name}
                </a>{' '}
                <span class="subtle">
                  {size(f.metadata?.bytes)} {f.metadata?.source ? `· ${f.metadata.source}` : ''}
                </span>
                <button
                  type="button"
                  class="subtle"
                  aria-label={`Delete ${name}`}
                  onClick={() => del(`${sessionPath(live.id)}/resources/files/${encodeURIComponent(f.id)}`).catch((e) => setError(errorText(e)))}
                >
                  Delete
                </button>
              </li>
            );
          })}
        </ul>
      )}
    </div>
  );
}
