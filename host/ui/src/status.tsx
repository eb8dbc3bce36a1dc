// A session's state at a glance: a dot (running pulses), a red mark for failed, and "Needs response" while an
// approval waits.
import type { Status } from './types';

export function StatusMark({ status, waiting }: { status: Status; waiting?: boolean }) {
  return (
    <>
      <span class={`dot ${status}`} role="img" aria-label={status} title={status} />
      {waiting && <span class="badge">Needs response</span>}
    </>
  );
}
