import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { initialState, nextDeadline, restoredState, step, type DecisionState, type Effect, type SiteShape } from "../../worker/src/engine/decision.ts";

const shape = (policy: Partial<SiteShape["policy"]> = {}, n = 2): SiteShape => ({
  uplinks: Array.from({ length: n }, (_, i) => ({ id: `isp${i + 1}`, priority: i + 1 })),
  policy: { heartbeatMs: 1_000, downAfterMs: 3_000, failbackAfterMs: 60_000, minDwellMs: 10_000, ...policy },
});

// A random history in phases: for a while, these uplinks beat about once a second (the others are
// silent). Phases make long outages, continuous health and flapping all likely.
const history = (n: number) => {
  const all = Array.from({ length: n }, (_, i) => `isp${i + 1}`);
  return fc
    .array(
      fc.record({
        seconds: fc.oneof({ arbitrary: fc.integer({ min: 0, max: 5 }), weight: 2 }, { arbitrary: fc.integer({ min: 5, max: 40 }), weight: 1 }),
        jitter: fc.integer({ min: 0, max: 400 }),
        speakers: fc.oneof({ arbitrary: fc.constant(all), weight: 2 }, { arbitrary: fc.subarray(all), weight: 2 }),
      }),
      { maxLength: 25 },
    )
    .map((phases) => phases.flatMap((p) => Array.from({ length: p.seconds }, () => ({ gap: 800 + p.jitter, speakers: p.speakers }))));
};

const policies = fc.record({
  downAfterMs: fc.integer({ min: 2_000, max: 10_000 }),
  failbackAfterMs: fc.integer({ min: 0, max: 30_000 }),
  minDwellMs: fc.integer({ min: 0, max: 30_000 }),
});

interface Run {
  state: DecisionState;
  switches: { at: number; effect: Extract<Effect, { kind: "switch" }>; before: DecisionState; after: DecisionState }[];
}

function run(sh: SiteShape, events: { gap: number; speakers: string[] }[], t0 = 1_000_000): Run {
  let s = initialState(sh, t0);
  let now = t0;
  const switches: Run["switches"] = [];
  const apply = (e: Parameters<typeof step>[1]) => {
    const before = s;
    const r = step(s, e, now, sh);
    for (const eff of r.effects) if (eff.kind === "switch") switches.push({ at: now, effect: eff, before, after: r.state });
    s = r.state;
  };
  for (const ev of events) {
    // The alarm: fire every deadline that falls inside the gap, as the coordinator does.
    const until = now + ev.gap;
    for (let d = nextDeadline(s, sh, now); d !== null && d <= until; d = nextDeadline(s, sh, now)) {
      now = d;
      apply({ kind: "tick" });
    }
    now = until;
    if (ev.speakers.length === 0) apply({ kind: "tick" });
    for (const u of ev.speakers) apply({ kind: "heartbeat", uplink: u });
  }
  return { state: s, switches };
}

describe("decision engine properties", () => {
  it("never switches to an uplink that is not up", () => {
    fc.assert(
      fc.property(policies, fc.integer({ min: 2, max: 4 }).chain((n) => fc.tuple(fc.constant(n), history(n))), (p, [n, h]) => {
        const sh = shape(p, n);
        for (const sw of run(sh, h).switches) expect(sw.after.uplinks[sw.effect.to]!.state).toBe("up");
      }),
      { numRuns: 300 },
    );
  });

  it("bumps the generation by exactly one per switch", () => {
    fc.assert(
      fc.property(policies, history(2), (p, h) => {
        const { state, switches } = run(shape(p), h);
        switches.forEach((sw, i) => expect(sw.effect.generation).toBe(i + 1));
        expect(state.generation).toBe(switches.length);
      }),
      { numRuns: 300 },
    );
  });

  it("never switches twice within minDwellMs unless the active uplink died", () => {
    fc.assert(
      fc.property(policies, history(3), (p, h) => {
        const sh = shape(p, 3);
        const { switches } = run(sh, h);
        for (let i = 1; i < switches.length; i++) {
          const sw = switches[i]!;
          if (sw.at - switches[i - 1]!.at >= sh.policy.minDwellMs) continue;
          expect(sw.effect.reason).toBe("failover");
          expect(sw.before.uplinks[sw.effect.from!]!.state === "down" || sw.after.uplinks[sw.effect.from!]!.state === "down").toBe(true);
        }
      }),
      { numRuns: 300 },
    );
  });

  it("fails back only after the better uplink has been up for failbackAfterMs, and while it answers (never into a silence that has begun)", () => {
    let failbacks = 0;
    fc.assert(
      fc.property(policies, history(2), (p, h) => {
        const sh = shape(p);
        for (const sw of run(sh, h).switches.filter((x) => x.effect.reason === "failback")) {
          failbacks++;
          const to = sw.after.uplinks[sw.effect.to]!;
          expect(sw.at - to.upSince!).toBeGreaterThanOrEqual(sh.policy.failbackAfterMs);
          expect(sw.at - to.lastHeardAt!).toBeLessThan(2 * sh.policy.heartbeatMs);
        }
      }),
      { numRuns: 600 },
    );
    // The generator must reach the case it claims to test (≈40 per 600 runs).
    expect(failbacks).toBeGreaterThan(10);
  });

  it("found by the soak: a primary flapping 5 s down, 3 s up with a 4 s hold-down: one failover, one failback once it holds", () => {
    const sh = shape({ downAfterMs: 3_000, failbackAfterMs: 4_000, minDwellMs: 0 });
    const beats = (seconds: number, speakers: string[]) => Array.from({ length: seconds }, () => ({ gap: 1_000, speakers }));
    const flap = [...beats(5, ["isp2"]), ...beats(3, ["isp1", "isp2"])];
    // Each return is up 3 s, then silent: still "up" a second past the hold-down, but no longer answering.
    const { switches } = run(sh, [...beats(10, ["isp1", "isp2"]), ...flap, ...flap, ...flap, ...beats(10, ["isp1", "isp2"])]);
    expect(switches.map((x) => x.effect.reason)).toEqual(["initial", "failover", "failback"]);
  });

  it("never switches once every uplink has been silent for downAfterMs", () => {
    fc.assert(
      fc.property(policies, history(2), fc.array(fc.integer({ min: 1, max: 20_000 }), { minLength: 1, maxLength: 30 }), (p, h, ticks) => {
        const sh = shape(p);
        let { state: s } = run(sh, h);
        const lastHeard = Math.max(...Object.values(s.uplinks).map((u) => u.lastHeardAt ?? s.observedSince));
        let now = Math.max(lastHeard + sh.policy.downAfterMs, ...Object.values(s.uplinks).map((u) => u.stateSince));
        for (const gap of ticks) {
          now += gap;
          const r = step(s, { kind: "tick" }, now, sh);
          expect(r.effects.filter((e) => e.kind === "switch")).toEqual([]);
          s = r.state;
        }
        expect(Object.values(s.uplinks).every((u) => u.state === "unknown")).toBe(true);
      }),
      { numRuns: 300 },
    );
  });

  it("no failover when every uplink falls silent within one heartbeat of the others", () => {
    let checked = 0;
    fc.assert(
      fc.property(policies, history(2), fc.integer({ min: 1, max: 999 }), fc.boolean(), (p, h, lag, primaryLast) => {
        const sh = shape(p);
        // Everyone speaks, then one more heartbeat a moment later through one uplink, then silence.
        const last = primaryLast ? "isp1" : "isp2";
        let { state: s } = run(sh, [...h, { gap: 1_000, speakers: ["isp1", "isp2"] }, { gap: lag, speakers: [last] }]);
        const silentFrom = s.uplinks[last]!.lastHeardAt!;
        if (Object.values(s.uplinks).some((u) => u.state !== "up")) return; // the case needs both up at the end
        checked++;
        let now = silentFrom;
        for (let d = nextDeadline(s, sh, now); d !== null && d <= silentFrom + 5 * sh.policy.downAfterMs; d = nextDeadline(s, sh, now)) {
          now = d;
          const r = step(s, { kind: "tick" }, now, sh);
          expect(r.effects.filter((e) => e.kind === "switch" && e.reason === "failover")).toEqual([]);
          s = r.state;
        }
        expect(Object.values(s.uplinks).every((u) => u.state === "unknown")).toBe(true);
      }),
      { numRuns: 500 },
    );
    expect(checked).toBeGreaterThan(100);
  });

  it("a restart causes no switch within the grace period", () => {
    fc.assert(
      fc.property(policies, history(2), fc.integer({ min: 0, max: 2_999 }), (p, h, within) => {
        const sh = shape({ ...p, downAfterMs: 3_000 });
        const { state } = run(sh, h);
        const now = Math.max(...Object.values(state.uplinks).map((u) => u.stateSince), state.lastSwitchAt ?? 0) + 1;
        const restored = restoredState(JSON.parse(JSON.stringify(state)), sh, now);
        const r = step(restored, { kind: "tick" }, now + within, sh);
        expect(r.effects.filter((e) => e.kind === "switch")).toEqual([]);
      }),
      { numRuns: 1000 },
    );
  });

  it("found by the property above: a backup too silent to take over is not made live by a restart's grace", () => {
    const sh = shape({ downAfterMs: 3_000, failbackAfterMs: 0, minDwellMs: 0 });
    const both = { gap: 800, speakers: ["isp1", "isp2"] };
    const { state } = run(sh, [both, both, both, both, both, { gap: 800, speakers: ["isp2"] }, { gap: 1_100, speakers: [] }, { gap: 1_100, speakers: [] }]);
    expect(state).toMatchObject({ active: "isp1", uplinks: { isp1: { state: "down" }, isp2: { state: "up" } } });
    const now = Math.max(...Object.values(state.uplinks).map((u) => u.stateSince)) + 1;
    const restored = restoredState(JSON.parse(JSON.stringify(state)), sh, now);
    expect(step(restored, { kind: "tick" }, now, sh).effects.filter((e) => e.kind === "switch")).toEqual([]);
    // Heard for real after the restart, it takes over.
    expect(step(restored, { kind: "heartbeat", uplink: "isp2" }, now + 100, sh).effects.filter((e) => e.kind === "switch")).toMatchObject([{ to: "isp2", reason: "failover" }]);
  });
});
