// Reads an API path whenever one of `deps` changes (a version counter bumped by the stream, say).
import { useEffect, useState } from 'preact/hooks';

import { errorText, get } from './api';

export function useFetch<T>(path: string | null, deps: unknown[] = []) {
  const [data, setData] = useState<T | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    if (!path) return;
    let cancelled = false;
    get<T>(path).then(
      (value) => {
        if (!cancelled) {
          setData(value);
          setError(null);
        }
      },
      (e) => !cancelled && setError(errorText(e)),
    );
    return () => {
      cancelled = true;
    };
  }, [path, ...deps]);
  return { data, error };
}
