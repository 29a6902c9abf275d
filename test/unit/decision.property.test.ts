import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { nextDeadline, restoredState, step, type DecisionState } from "../../worker/src/engine/decision.ts";
import { T0, heldSince, history, lastHeard, policies, policyAt, run, shape, type Act } from "./decision-harness.ts";

/** Beats once a second from `from` for `seconds`, through `speakers`. */
const beats = (from: number, seconds: number, speakers: string[], gap = 1_000): Act[] =>
  Array.from({ length: seconds }, (_, i) =>
    speakers.map((u) => ({ at: from + (i + 1) * gap, kind: "beat" as const, uplink: u })),
  ).flat();

const withUplinks = fc.integer({ min: 2, max: 4 }).chain((n) => fc.tuple(fc.constant(n), history(n, true)));

describe("decision engine properties", () => {
  it("switches only to an uplink the history heard within downAfterMs, or to the one an override pins", () => {
    fc.assert(
      fc.property(policies, withUplinks, (p, [n, acts]) => {
        const sh = shape(p, n);
        const r = run(sh, acts);
        for (const sw of r.switches) {
          if (sw.effect.reason === "override") {
            const pinned = acts.filter((a) => a.kind === "override" && a.at <= sw.at).at(-1);
            expect(pinned).toMatchObject({ uplink: sw.effect.to });
            continue;
          }
          const heard = lastHeard(acts.slice(0, sw.seen), sw.effect.to, sw.at);
          expect(heard, JSON.stringify(sw.effect)).not.toBeNull();
          expect(sw.at - heard!).toBeLessThan(policyAt(sh, acts.slice(0, sw.seen), sw.at).downAfterMs);
        }
      }),
      { numRuns: 300 },
    );
  });

  it("never switches twice within minDwellMs unless the active uplink died", () => {
    fc.assert(
      fc.property(policies, history(3), (p, acts) => {
        const sh = shape(p, 3);
        const { switches } = run(sh, acts);
        for (let i = 1; i < switches.length; i++) {
          const sw = switches[i]!;
          if (sw.at - switches[i - 1]!.at >= sh.policy.minDwellMs) continue;
          expect(sw.effect.reason).toBe("failover");
          // Dead by the history: not heard for downAfterMs.
          expect(
            sw.at - (lastHeard(acts.slice(0, sw.seen), sw.effect.from!, sw.at) ?? -Infinity),
          ).toBeGreaterThanOrEqual(sh.policy.downAfterMs);
        }
      }),
      { numRuns: 300 },
    );
  });

  it("fails back only once the better uplink has been heard without a judged silence for failbackAfterMs, and while it answers", () => {
    let failbacks = 0;
    fc.assert(
      fc.property(policies, history(2, true), (p, acts) => {
        const sh = shape(p);
        const r = run(sh, acts);
        for (const sw of r.switches.filter((x) => x.effect.reason === "failback")) {
          failbacks++;
          const known = acts.slice(0, sw.seen);
          const policy = policyAt(sh, known, sw.at);
          const since = heldSince(r, sw.effect.to, sw.at);
          expect(since).not.toBeNull();
          expect(sw.at - since!).toBeGreaterThanOrEqual(policy.failbackAfterMs);
          expect(sw.at - lastHeard(known, sw.effect.to, sw.at)!).toBeLessThan(2 * policy.heartbeatMs);
        }
      }),
      { numRuns: 600 },
    );
    // The generator must reach the case it claims to test.
    expect(failbacks).toBeGreaterThan(20);
  });

  it("one switch per outage: the primary silent while the backup beats costs one failover, and one failback once it holds", () => {
    let outages = 0;
    fc.assert(
      fc.property(
        policies,
        fc.integer({ min: 0, max: 60 }),
        fc.integer({ min: 0, max: 120 }),
        fc.array(fc.integer({ min: 800, max: 1_200 }), { minLength: 200, maxLength: 200 }),
        fc.option(fc.integer({ min: 0, max: 180_000 })),
        (p, silentBeats, backBeats, gaps, restartAt) => {
          const sh = shape(p);
          // Both beat until settled on the primary, then the primary is silent for `silentBeats` of
          // the backup's heartbeats, then both beat again; the edge may restart at any moment.
          const settle = 5 + Math.ceil((p.failbackAfterMs + p.minDwellMs) / 800);
          const acts: Act[] = [];
          let at = T0;
          for (let i = 0; i < settle + silentBeats + backBeats; i++) {
            at += gaps[i % gaps.length]!;
            const primary = i < settle || i >= settle + silentBeats;
            if (primary) acts.push({ at, kind: "beat", uplink: "isp1" });
            acts.push({ at, kind: "beat", uplink: "isp2" });
          }
          const lastBefore = lastHeard(
            acts,
            "isp1",
            Math.max(
              ...acts
                .filter((a) => a.kind === "beat" && a.uplink === "isp2")
                .slice(0, settle)
                .map((a) => a.at),
            ),
          )!;
          if (restartAt !== null) {
            acts.push({ at: lastBefore + restartAt, kind: "restart" });
            acts.sort((a, b) => a.at - b.at);
          }
          const r = run(sh, acts, at + 5 * p.downAfterMs);
          const later = r.switches.filter((s) => s.at > lastBefore);
          const back = acts.find((a) => a.kind === "beat" && a.uplink === "isp1" && a.at > lastBefore)?.at ?? Infinity;
          // The reference: the primary is due at downAfterMs after its last heartbeat, or after a
          // restart's grace while still due; the backup, beating, takes over at its first heartbeat then.
          let due = lastBefore + p.downAfterMs;
          // A restart before any step has judged it down grants it grace, even one past its due.
          for (const x of r.restarts)
            if (x >= lastBefore && !r.steps.some((o) => o.at >= due && o.at <= x)) due = x + p.downAfterMs;
          const failsOver = acts.some((a) => a.kind === "beat" && a.uplink === "isp2" && a.at >= due && a.at < back);
          expect(r.switches[0]).toMatchObject({ effect: { reason: "initial", to: "isp1" } });
          if (!failsOver) return void expect(later).toEqual([]);
          outages++;
          expect(later.map((s) => s.effect.reason)).toEqual(later.length > 1 ? ["failover", "failback"] : ["failover"]);
          expect(later[0]!.at).toBeLessThan(back);
          const lastBeat = at;
          const failbackDue = Math.max(back + p.failbackAfterMs, later[0]!.at + p.minDwellMs);
          if (later[1]) expect(later[1].at).toBeGreaterThanOrEqual(failbackDue);
          else expect(lastBeat - failbackDue).toBeLessThan(1_200);
        },
      ),
      { numRuns: 400 },
    );
    expect(outages).toBeGreaterThan(100);
  });

  it("no switch from a restart: restored at any moment, the edge makes no switch on its own within the grace that follows", () => {
    let owed = 0;
    fc.assert(
      fc.property(
        policies,
        history(2, true),
        fc.nat(),
        fc.integer({ min: 0, max: 1_199 }),
        fc.array(fc.integer({ min: 0, max: 9_999 }), { minLength: 1, maxLength: 6 }),
        (p, acts, pick, offset, ticks) => {
          if (!acts.length) return;
          const sh = shape(p);
          // Cut the history at a random moment: after any act, within its second.
          const restartAt = acts[pick % acts.length]!.at + offset;
          const r = run(
            sh,
            acts.filter((a) => a.at <= restartAt),
            restartAt,
          );
          const downAfterMs = r.shape.policy.downAfterMs;
          let s: DecisionState = restoredState(JSON.parse(JSON.stringify(r.state)), r.shape, restartAt);
          let plain = r.state;
          // Then only alarms and status reads, at random moments inside the grace.
          for (const t of ticks.map((x) => restartAt + (x % downAfterMs)).sort((a, b) => a - b)) {
            const out = step(s, { kind: "tick" }, t, r.shape);
            expect(out.effects.filter((e) => e.kind === "switch")).toEqual([]);
            s = out.state;
            const without = step(plain, { kind: "tick" }, t, r.shape);
            if (without.effects.some((e) => e.kind === "switch")) owed++;
            plain = without.state;
          }
        },
      ),
      { numRuns: 1_000 },
    );
    // The cut must land where the edge, not restarted, would have switched, or the property tests nothing.
    expect(owed).toBeGreaterThan(5);
  });

  it("found by the soak: a primary flapping 5 s down, 3 s up with a 4 s hold-down: one failover, one failback once it holds", () => {
    const sh = shape({ downAfterMs: 3_000, failbackAfterMs: 4_000, minDwellMs: 0 });
    const phases: [number, string[]][] = [
      [10, ["isp1", "isp2"]],
      ...Array.from({ length: 3 }, (): [number, string[]][] => [
        [5, ["isp2"]],
        [3, ["isp1", "isp2"]],
      ]).flat(),
      [10, ["isp1", "isp2"]],
    ];
    const acts: Act[] = [];
    let at = T0;
    for (const [seconds, speakers] of phases) {
      acts.push(...beats(at, seconds, speakers));
      at += seconds * 1_000;
    }
    // Each return is up 3 s, then silent: still "up" a second past the hold-down, but no longer answering.
    expect(run(sh, acts).switches.map((x) => x.effect.reason)).toEqual(["initial", "failover", "failback"]);
  });

  it("never switches once every uplink has been silent for downAfterMs", () => {
    fc.assert(
      fc.property(
        policies,
        history(2, true),
        fc.array(fc.integer({ min: 1, max: 20_000 }), { minLength: 1, maxLength: 30 }),
        (p, acts, ticks) => {
          const sh = shape(p);
          const r = run(sh, acts);
          let s = r.state;
          const policy = policyAt(sh, acts, r.now);
          const last = Math.max(T0, ...acts.filter((a) => a.kind === "beat").map((a) => a.at), ...r.restarts);
          const pinnedUntil = Math.max(0, ...acts.flatMap((a) => (a.kind === "override" ? [a.at + a.forMs] : [])));
          let now = Math.max(last + policy.downAfterMs, pinnedUntil, r.now);
          const shNow = { ...sh, policy };
          for (const gap of ticks) {
            now += gap;
            const out = step(s, { kind: "tick" }, now, shNow);
            expect(out.effects.filter((e) => e.kind === "switch")).toEqual([]);
            s = out.state;
          }
          expect(Object.values(s.uplinks).every((u) => u.state === "unknown")).toBe(true);
        },
      ),
      { numRuns: 300 },
    );
  });

  it("no failover when every uplink falls silent within one heartbeat of the others", () => {
    let checked = 0;
    fc.assert(
      fc.property(policies, history(2), fc.integer({ min: 1, max: 999 }), fc.boolean(), (p, acts, lag, primaryLast) => {
        const sh = shape(p);
        // Everyone speaks, then one more heartbeat a moment later through one uplink, then silence.
        const last = primaryLast ? "isp1" : "isp2";
        const end = Math.max(T0, ...acts.map((a) => a.at));
        const tail: Act[] = [...beats(end, 1, ["isp1", "isp2"]), { at: end + 1_000 + lag, kind: "beat", uplink: last }];
        const r = run(sh, [...acts, ...tail]);
        let s: DecisionState = r.state;
        const silentFrom = end + 1_000 + lag;
        if (Object.values(s.uplinks).some((u) => u.state !== "up")) return; // the case needs both up at the end
        checked++;
        let now = silentFrom;
        for (
          let d = nextDeadline(s, sh, now);
          d !== null && d <= silentFrom + 5 * sh.policy.downAfterMs;
          d = nextDeadline(s, sh, now)
        ) {
          now = d;
          const out = step(s, { kind: "tick" }, now, sh);
          expect(out.effects.filter((e) => e.kind === "switch" && e.reason === "failover")).toEqual([]);
          s = out.state;
        }
        expect(Object.values(s.uplinks).every((u) => u.state === "unknown")).toBe(true);
      }),
      { numRuns: 500 },
    );
    expect(checked).toBeGreaterThan(100);
  });

  it("found by the restart property: a backup too silent to take over is not made live by a restart's grace", () => {
    const sh = shape({ downAfterMs: 3_000, failbackAfterMs: 0, minDwellMs: 0 });
    const acts: Act[] = [...beats(T0, 5, ["isp1", "isp2"], 800), { at: T0 + 4_800, kind: "beat", uplink: "isp2" }];
    // isp1 silent since 4 s, isp2 since 4.8 s: at 7 s (a status read, say) isp1 is judged down,
    // and isp2, silent for 2.2 s, is too quiet to take over.
    const s = step(run(sh, acts).state, { kind: "tick" }, T0 + 7_000, sh).state;
    expect(s).toMatchObject({ active: "isp1", uplinks: { isp1: { state: "down" }, isp2: { state: "up" } } });
    const restored = restoredState(JSON.parse(JSON.stringify(s)), sh, T0 + 7_001);
    expect(step(restored, { kind: "tick" }, T0 + 7_001, sh).effects.filter((e) => e.kind === "switch")).toEqual([]);
    // Heard for real after the restart, it takes over.
    expect(
      step(restored, { kind: "heartbeat", uplink: "isp2" }, T0 + 7_100, sh).effects.filter((e) => e.kind === "switch"),
    ).toMatchObject([{ to: "isp2", reason: "failover" }]);
  });
});
