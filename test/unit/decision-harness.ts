// Drives the decision engine through a generated history the way the coordinator does, and keeps
// the history itself (what was heard, when) so properties can judge the engine against it rather
// than against the engine's own fields.
import fc from "fast-check";
import {
  initialState,
  nextDeadline,
  reshapedState,
  restoredState,
  step,
  type DecisionEvent,
  type DecisionState,
  type Effect,
  type SiteShape,
} from "../../worker/src/engine/decision.ts";
import type { Testimony } from "../../worker/src/engine/witness.ts";
import type { PathQuality, Policy } from "#shared";

export const T0 = 1_000_000;
/** The coordinator's alarm backstop (site-coordinator.ts `silenceBackstopMs`; test/edge/alarm-backstop.test.ts holds the coordinator to it). */
export const backstopMs = (downAfterMs: number) => Math.min(4 * downAfterMs, 60_000);

export const shape = (policy: Partial<Policy> = {}, n = 2): SiteShape => ({
  uplinks: Array.from({ length: n }, (_, i) => ({ id: `isp${i + 1}`, priority: i + 1 })),
  policy: {
    heartbeatMs: 1_000,
    downAfterMs: 3_000,
    failbackAfterMs: 60_000,
    minDwellMs: 10_000,
    degradedLossRatio: 0.2,
    degradedRttMs: 500,
    witnessQuorum: 2,
    meteredHeartbeatMs: 30_000,
    meteredCheckMs: 600_000,
    ...policy,
  },
});

export const policies = fc.record({
  downAfterMs: fc.integer({ min: 2_000, max: 10_000 }),
  failbackAfterMs: fc.integer({ min: 0, max: 30_000 }),
  minDwellMs: fc.integer({ min: 0, max: 30_000 }),
});

/** A probe's verdict far from either threshold: degraded or healthy whatever the hysteresis. */
const BAD: PathQuality = { lossRatio: 0.9, rttMs: 40, samples: 60 };
const GOOD: PathQuality = { lossRatio: 0, rttMs: 20, samples: 60 };

export type Act =
  | { at: number; kind: "beat"; uplink: string; path?: PathQuality; witness?: Testimony }
  | { at: number; kind: "override"; uplink: string; forMs: number }
  | { at: number; kind: "clear" }
  | { at: number; kind: "policy"; policy: Partial<Policy> }
  | { at: number; kind: "restart" };

/**
 * A random history in phases: for a while, these uplinks beat about once a second (the others are
 * silent). Phases make long outages, continuous health and flapping all likely. With `extras`,
 * some seconds also carry a probe's verdict, an override set or cleared, a policy change, or a
 * restart of the edge at a random moment of that second.
 */
export const history = (n: number, extras = false): fc.Arbitrary<Act[]> => {
  const all = Array.from({ length: n }, (_, i) => `isp${i + 1}`);
  const extra = fc.oneof(
    { arbitrary: fc.constant(null), weight: 30 },
    {
      arbitrary: fc.record({ kind: fc.constant("path" as const), bad: fc.boolean(), uplink: fc.constantFrom(...all) }),
      weight: extras ? 4 : 0,
    },
    {
      arbitrary: fc.record({
        kind: fc.constant("override" as const),
        uplink: fc.constantFrom(...all),
        forMs: fc.integer({ min: 1_000, max: 40_000 }),
      }),
      weight: extras ? 1 : 0,
    },
    { arbitrary: fc.record({ kind: fc.constant("clear" as const) }), weight: extras ? 1 : 0 },
    { arbitrary: fc.record({ kind: fc.constant("policy" as const), policy: policies }), weight: extras ? 1 : 0 },
    {
      arbitrary: fc.record({ kind: fc.constant("restart" as const), within: fc.integer({ min: 0, max: 1_199 }) }),
      weight: extras ? 2 : 0,
    },
  );
  return fc
    .array(
      fc.record({
        seconds: fc.oneof(
          { arbitrary: fc.integer({ min: 0, max: 5 }), weight: 2 },
          { arbitrary: fc.integer({ min: 5, max: 40 }), weight: 1 },
        ),
        jitter: fc.integer({ min: 0, max: 400 }),
        speakers: fc.oneof({ arbitrary: fc.constant(all), weight: 2 }, { arbitrary: fc.subarray(all), weight: 2 }),
        extras: fc.array(extra, { minLength: 40, maxLength: 40 }),
      }),
      { maxLength: 25 },
    )
    .map((phases) => {
      const acts: Act[] = [];
      let at = T0;
      for (const p of phases)
        for (let i = 0; i < p.seconds; i++) {
          const x = p.extras[i];
          const gap = 800 + p.jitter;
          if (x?.kind === "restart") acts.push({ at: at + Math.min(x.within, gap - 1), kind: "restart" });
          at += gap;
          for (const u of p.speakers)
            acts.push({
              at,
              kind: "beat",
              uplink: u,
              ...(x?.kind === "path" && x.uplink === u ? { path: x.bad ? BAD : GOOD } : {}),
            });
          if (x?.kind === "override") acts.push({ at, kind: "override", uplink: x.uplink, forMs: x.forMs });
          if (x?.kind === "clear") acts.push({ at, kind: "clear" });
          if (x?.kind === "policy") acts.push({ at, kind: "policy", policy: x.policy });
        }
      return acts;
    });
};

export interface Switch {
  at: number;
  /** How many acts the engine had been given by then, this one included: "before" by the history. */
  seen: number;
  effect: Extract<Effect, { kind: "switch" }>;
  before: DecisionState;
  after: DecisionState;
}

export interface Run {
  state: DecisionState;
  shape: SiteShape;
  switches: Switch[];
  /** Every effect, with when. */
  effects: { at: number; effect: Effect }[];
  /** Every moment the engine judged the site (a heartbeat, an alarm, a call), and its downAfterMs then. */
  steps: { at: number; downAfterMs: number }[];
  restarts: number[];
  /** What happened, as the coordinator saw it. */
  acts: Act[];
  now: number;
}

/**
 * The coordinator's way: every message is a step; between messages, the one alarm fires at the
 * earliest deadline plus the backstop (never at the deadline itself); a restart keeps only what
 * SQLite held (the state as JSON) and restores it. `until` runs alarms on past the last act.
 */
export function run(sh: SiteShape, acts: readonly Act[], until?: number): Run {
  let shape = sh;
  let s = initialState(shape, T0);
  let now = T0;
  const r: Run = {
    state: s,
    shape,
    switches: [],
    effects: [],
    steps: [],
    restarts: [],
    acts: [...acts],
    now,
  };
  let seen = 0;
  const apply = (e: DecisionEvent) => {
    const before = s;
    const out = step(s, e, now, shape);
    r.steps.push({ at: now, downAfterMs: shape.policy.downAfterMs });
    for (const eff of out.effects) {
      r.effects.push({ at: now, effect: eff });
      if (eff.kind === "switch") r.switches.push({ at: now, seen, effect: eff, before, after: out.state });
    }
    s = out.state;
  };
  const alarmsUntil = (t: number) => {
    for (
      let d = nextDeadline(s, shape, now);
      d !== null && d + backstopMs(shape.policy.downAfterMs) <= t;
      d = nextDeadline(s, shape, now)
    ) {
      now = d + backstopMs(shape.policy.downAfterMs);
      apply({ kind: "tick" });
    }
  };
  for (const a of acts) {
    alarmsUntil(a.at);
    now = a.at;
    seen++;
    switch (a.kind) {
      case "beat":
        apply({ kind: "heartbeat", uplink: a.uplink, path: a.path ?? null, witness: a.witness ?? null });
        break;
      case "override":
        apply({ kind: "override-set", override: { uplink: a.uplink, until: now + a.forMs, reason: "test" } });
        break;
      case "clear":
        apply({ kind: "override-cleared" });
        break;
      case "policy":
        shape = { ...shape, policy: { ...shape.policy, ...a.policy } };
        s = reshapedState(s, shape, now);
        apply({ kind: "tick" });
        break;
      case "restart":
        s = restoredState(JSON.parse(JSON.stringify(s)) as DecisionState, shape, now);
        r.restarts.push(now);
        break;
    }
  }
  if (until !== undefined) alarmsUntil(until);
  return { ...r, state: s, shape, now };
}

/** When `uplink` was last heard at or before `t`, by the history (not the engine). */
export function lastHeard(acts: readonly Act[], uplink: string, t: number): number | null {
  let last: number | null = null;
  for (const a of acts) if (a.at <= t && a.kind === "beat" && a.uplink === uplink) last = a.at;
  return last;
}

/**
 * The reference model of "up since": the first heartbeat after the last moment the engine can
 * have seen `uplink` silent for downAfterMs (a step with no heartbeat from it for that long,
 * counting an edge restart as a fresh grace, like a heartbeat). A silence later withdrawn without
 * a heartbeat (a policy change lengthened downAfterMs, or a restart's grace) counts as never
 * judged. A lower bound for any honest hold-down: a judged silence always restarts it.
 */
export function heldSince(r: Run, uplink: string, t: number): number | null {
  const beats = r.acts.filter((a) => a.kind === "beat" && a.uplink === uplink).map((a) => a.at);
  let silentAt = -Infinity;
  let before = -Infinity; // silentAt before the current silence, restored if it is withdrawn
  let silent = false;
  let heard = -1; // index of the last beat at or before the step
  let restart = 0;
  let grace = T0;
  for (const { at: o, downAfterMs } of r.steps) {
    if (o > t) break;
    while (heard + 1 < beats.length && beats[heard + 1]! <= o) heard++;
    while (restart < r.restarts.length && r.restarts[restart]! <= o) grace = r.restarts[restart++]!;
    const last = heard >= 0 ? beats[heard]! : -Infinity;
    if (o - Math.max(last, grace) >= downAfterMs) {
      if (!silent) before = silentAt;
      silent = true;
      silentAt = o;
    } else if (silent) {
      silent = false;
      if (last <= silentAt) silentAt = before;
    }
  }
  return beats.find((b) => b > silentAt && b <= t) ?? null;
}

/** The policy in force at `t`, by the history's policy changes. */
export function policyAt(sh: SiteShape, acts: readonly Act[], t: number): Policy {
  let p = sh.policy;
  for (const a of acts) if (a.kind === "policy" && a.at <= t) p = { ...p, ...a.policy };
  return p;
}

/** Every uplink-state change of a run, when the engine made it (read from its effects). */
export const statesOf = (r: Run): { at: number; uplink: string; to: string }[] =>
  r.effects.flatMap(({ at, effect: e }) => (e.kind === "uplink-state" ? [{ at, uplink: e.uplink, to: e.to }] : []));
