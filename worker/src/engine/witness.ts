// Witness reports, SWIM-style indirect evidence, pure: a server agent whose heartbeat through
// uplink A went unanswered while its channel on B answers says so through B. Enough independent
// witnesses, with A silent at the edge past one heartbeat, take A down before downAfterMs.
import { WITNESS_CONFIRM_MS, type Policy, type Unanswered } from "#shared";

export interface WitnessReport {
  /** The uplink the report travelled through (it answers). */
  via: string;
  /** Edge time of the witness's first unanswered heartbeat, as it says: shown, never judged on (clocks skew). */
  since: number;
  /** When the edge first received the report (it counts WITNESS_CONFIRM_MS later), and last. */
  first: number;
  at: number;
}

/** Per uplink reported unanswered, per witness (agent id). */
export type Witnesses = Record<string, Record<string, WitnessReport>>;

/** What one server's heartbeat says as a witness. */
export interface Testimony {
  agent: string;
  unanswered: readonly Unanswered[];
}

/**
 * A's silence at the edge needed on top of the witnesses: one heartbeat plus a quarter (at least
 * 250 ms), so that one late or lost heartbeat of A's, or a path that just got slower, never counts.
 */
export const witnessSilenceMs = (policy: Policy) => policy.heartbeatMs + Math.max(250, policy.heartbeatMs / 4);

/** A report lapses unless renewed within two heartbeats (the witness repeats it with each one through `via`). */
const reportLifeMs = (policy: Policy) => 2 * policy.heartbeatMs;

const own = <T>(o: Record<string, T>, k: string): T | undefined => (Object.hasOwn(o, k) ? o[k] : undefined);

/**
 * Folds one heartbeat of `t.agent` through `via` into the reports: a heartbeat through an uplink
 * disproves its own report on it, and the uplinks it lists now replace what it said through `via` before.
 */
export function testify(
  ws: Witnesses,
  t: Testimony,
  via: string,
  uplinks: ReadonlySet<string>,
  now: number,
): Witnesses {
  const next: Witnesses = {};
  const before = (uplink: string) => {
    const r = own(own(ws, uplink) ?? {}, t.agent);
    return r?.via === via ? r.first : now;
  };
  for (const [uplink, byAgent] of Object.entries(ws)) {
    const mine = own(byAgent, t.agent);
    const keep = mine === undefined || (uplink !== via && mine.via !== via);
    const rest = keep ? byAgent : Object.fromEntries(Object.entries(byAgent).filter(([a]) => a !== t.agent));
    if (Object.keys(rest).length) next[uplink] = rest;
  }
  for (const u of t.unanswered) {
    if (!uplinks.has(u.uplink)) continue;
    next[u.uplink] = { ...own(next, u.uplink), [t.agent]: { via, since: u.since, first: before(u.uplink), at: now } };
  }
  return next;
}

/**
 * The witnesses against `uplink` that count now: standing WITNESS_CONFIRM_MS, renewed lately, through an uplink `healthyNow`
 * (up, answering, not degraded), one per agent. Null when they fall short of the quorum.
 */
export function witnessesAgainst(
  ws: Witnesses | undefined,
  uplink: string,
  healthyNow: (id: string) => boolean,
  policy: Policy,
  now: number,
): string[] | null {
  if (policy.witnessQuorum < 1 || !ws) return null;
  const reports = own(ws, uplink) ?? {};
  const agents = Object.entries(reports)
    .filter(
      ([, r]) =>
        now - r.first >= WITNESS_CONFIRM_MS &&
        now - r.at <= reportLifeMs(policy) &&
        r.via !== uplink &&
        healthyNow(r.via),
    )
    .map(([a]) => a)
    .sort();
  return agents.length >= policy.witnessQuorum ? agents : null;
}

/** Reports on uplinks the site still has. */
export function prunedWitnesses(ws: Witnesses, uplinks: ReadonlySet<string>): Witnesses {
  return Object.fromEntries(Object.entries(ws).filter(([u]) => uplinks.has(u)));
}
