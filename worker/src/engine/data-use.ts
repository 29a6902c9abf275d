// A metered uplink's use this period, summed over its hosts from their kernels' cumulative byte
// counters, and the share of its data cap that deserves a word (75 %, 95 %, each once a period).
// Pure: no clock, no I/O.
import type { DataPlan, UplinkBytes } from "#shared";

export const MB = 1_000_000;
/** Shares of the cap announced, each once a period. */
export const THRESHOLDS = [75, 95] as const;
/** A 32-bit counter (some drivers on 32-bit kernels) falls from its upper half to near zero when it wraps. */
const WRAP32 = 2 ** 32;

export type Counter = Omit<UplinkBytes, "uplink">;

export interface PeriodUse {
  periodStart: number;
  bytes: number;
  /** The highest threshold announced this period (0: none yet). */
  notified: number;
}

export interface DataUseState {
  /** Per metered uplink. */
  uplinks: Record<string, PeriodUse>;
  /** The last counters per agent and uplink (`counterKey`): what the next report is measured from. */
  counters: Record<string, Counter>;
}

/** A metered uplink as the accounting sees it: its plan, if it has a cap. */
export interface Metered {
  uplink: string;
  plan: DataPlan | null;
}

export interface Crossing {
  uplink: string;
  percent: number;
  bytes: number;
  plan: DataPlan;
  resetsAt: number;
}

export const counterKey = (agent: string, uplink: string) => `${agent}\n${uplink}`;

/** When the period holding `now` began: the latest `resetDay` of a month, 00:00 UTC, not after `now`. */
export function periodStart(now: number, resetDay: number): number {
  const d = new Date(now);
  const thisMonth = Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), resetDay);
  return now >= thisMonth ? thisMonth : Date.UTC(d.getUTCFullYear(), d.getUTCMonth() - 1, resetDay);
}

/** When the period that began at `start` ends. */
export function periodEnd(start: number, resetDay: number): number {
  const d = new Date(start);
  return Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, resetDay);
}

/** What one direction of a counter grew by; a fall is a wrap (from its 32-bit upper half) or a restart. */
function grown(before: number, after: number): number {
  if (after >= before) return after - before;
  return before >= WRAP32 / 2 && before < WRAP32 ? WRAP32 - before + after : after;
}

/**
 * Bytes through the interface since the last report. A first report only sets the baseline: its
 * counters hold whatever the host moved before the site counted (since its boot). A new counting
 * (a reboot, the interface created again) started from zero: all of it is new.
 */
export function counterDelta(last: Counter | undefined, now: Counter): number {
  if (!last) return 0;
  if (last.counter !== now.counter) return now.rx + now.tx;
  return grown(last.rx, now.rx) + grown(last.tx, now.tx);
}

/** The use of the period holding `now`: a new period starts from zero. */
export function currentUse(use: PeriodUse | undefined, resetDay: number, now: number): PeriodUse {
  const start = periodStart(now, resetDay);
  return use && use.periodStart === start ? use : { periodStart: start, bytes: 0, notified: 0 };
}

const resetDayOf = (m: Metered) => m.plan?.resetDay ?? 1;

/**
 * One agent's report folded in: each metered uplink's counters measured against the agent's last,
 * the growth added to the uplink's period, and the thresholds it passed. Reports for uplinks that
 * are not metered are not kept.
 */
export function record(
  state: DataUseState,
  agent: string,
  reports: readonly UplinkBytes[],
  metered: readonly Metered[],
  now: number,
): { state: DataUseState; crossings: Crossing[] } {
  const uplinks = { ...state.uplinks };
  const counters = { ...state.counters };
  const crossings: Crossing[] = [];
  for (const r of reports) {
    const m = metered.find((x) => x.uplink === r.uplink);
    if (!m) continue;
    const key = counterKey(agent, r.uplink);
    const delta = counterDelta(counters[key], r);
    counters[key] = { counter: r.counter, rx: r.rx, tx: r.tx };
    const before = currentUse(uplinks[r.uplink], resetDayOf(m), now);
    const after = { ...before, bytes: before.bytes + delta };
    if (m.plan) {
      const passed = THRESHOLDS.filter((t) => t > before.notified && after.bytes * 100 >= t * m.plan!.capMB * MB);
      for (const percent of passed)
        crossings.push({
          uplink: r.uplink,
          percent,
          bytes: after.bytes,
          plan: m.plan,
          resetsAt: periodEnd(after.periodStart, m.plan.resetDay),
        });
      after.notified = Math.max(before.notified, ...passed);
    }
    uplinks[r.uplink] = after;
  }
  return { state: { uplinks, counters }, crossings };
}

/** The share of its cap (percent) the uplink has used this period; null without a cap. */
export function usedShare(state: DataUseState, m: Metered, now: number): number | null {
  if (!m.plan) return null;
  return (100 * currentUse(state.uplinks[m.uplink], m.plan.resetDay, now).bytes) / (m.plan.capMB * MB);
}
