// Each uplink's states over a window (the status page's 24-hour strip), from the recorded
// "uplink" state changes: pure, so the page's picture is exactly the event log's.
import type { StateSegment, UplinkAvailability, UplinkState } from "#shared";

export const AVAILABILITY_WINDOW_MS = 24 * 3600_000;

export interface UplinkChange {
  at: number;
  uplink: string;
  from: UplinkState;
  to: UplinkState;
}

/**
 * `changes` oldest first, all at or after `start`; `current` is each uplink's state now. An uplink
 * with no change in the window was in its current state throughout.
 */
export function availability(
  current: readonly { id: string; state: UplinkState }[],
  changes: readonly UplinkChange[],
  start: number,
  now: number,
): UplinkAvailability[] {
  return current.map(({ id, state: nowState }) => {
    const mine = changes.filter((c) => c.uplink === id && c.at >= start && c.at <= now);
    const segments: StateSegment[] = [];
    let cursor = start;
    let state = mine[0]?.from ?? nowState;
    const push = (to: number) => {
      if (to <= cursor) return;
      const last = segments.at(-1);
      if (last && last.state === state) last.to = to;
      else segments.push({ from: cursor, to, state });
      cursor = to;
    };
    for (const c of mine) {
      push(c.at);
      state = c.to;
    }
    push(now);
    return { uplink: id, segments };
  });
}
