import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  initialState,
  step,
  type Effect,
  type ReconcilerEvent,
  type ReconcilerState,
} from "../../agent/src/directive/reconciler.ts";

const opts = { retryDelay: (n: number) => 1_000 * 2 ** n };
const d = (generation: number, activeUplink = "isp1", restartTunnels = false) => ({
  generation,
  activeUplink,
  restartTunnels,
});
const ops = (effects: Effect[]) => effects.filter((e) => e.kind === "apply" || e.kind === "restart-tunnels");

function run(state: ReconcilerState, events: [ReconcilerEvent, number][]) {
  const all: Effect[] = [];
  for (const [e, now] of events) {
    const r = step(state, e, now, opts);
    state = r.state;
    all.push(...r.effects);
  }
  return { state, effects: all };
}

describe("reconciler", () => {
  it("applies a new directive, then records the applied generation and persists", () => {
    let r = step(initialState(), { kind: "directive", directive: d(1, "isp2") }, 0, opts);
    expect(ops(r.effects)).toEqual([{ kind: "apply", generation: 1, activeUplink: "isp2" }]);
    expect(r.effects).toContainEqual({ kind: "persist" });
    r = step(r.state, { kind: "applied", generation: 1 }, 10, opts);
    expect(r.state.appliedGeneration).toBe(1);
    expect(r.state.busy).toBeNull();
    expect(r.effects).toContainEqual({ kind: "persist" });
    expect(ops(r.effects)).toEqual([]);
  });

  it("is idempotent: the same directive again does nothing", () => {
    const applied = run(initialState(), [
      [{ kind: "directive", directive: d(4) }, 0],
      [{ kind: "applied", generation: 4 }, 1],
    ]).state;
    const again = step(applied, { kind: "directive", directive: d(4) }, 2, opts);
    expect(again.effects).toEqual([]);
    expect(again.state).toEqual(applied);
  });

  it("newest generation wins: an older directive arriving late is ignored", () => {
    const s = run(initialState(), [
      [{ kind: "directive", directive: d(5, "isp2") }, 0],
      [{ kind: "applied", generation: 5 }, 1],
      [{ kind: "directive", directive: d(3, "isp1") }, 2],
    ]);
    expect(s.state.directive).toEqual(d(5, "isp2"));
    expect(ops(s.effects)).toEqual([{ kind: "apply", generation: 5, activeUplink: "isp2" }]);
  });

  it("a newer directive while an apply runs is applied right after it", () => {
    const s = run(initialState(), [
      [{ kind: "directive", directive: d(1, "isp2") }, 0],
      [{ kind: "directive", directive: d(2, "isp1") }, 1],
      [{ kind: "applied", generation: 1 }, 2],
    ]);
    expect(ops(s.effects)).toEqual([
      { kind: "apply", generation: 1, activeUplink: "isp2" },
      { kind: "apply", generation: 2, activeUplink: "isp1" },
    ]);
    expect(s.state.appliedGeneration).toBe(1);
    expect(s.state.busy).toEqual({ op: "apply", generation: 2 });
  });

  it("restarts tunnels once per generation, only after the routes are applied", () => {
    const s = run(initialState(), [
      [{ kind: "directive", directive: d(7, "isp2", true) }, 0],
      [{ kind: "applied", generation: 7 }, 1],
      [{ kind: "directive", directive: d(7, "isp2", true) }, 2],
      [{ kind: "tunnels-restarted", generation: 7 }, 3],
      [{ kind: "directive", directive: d(7, "isp2", true) }, 4],
      [{ kind: "tick" }, 5],
    ]);
    expect(ops(s.effects)).toEqual([
      { kind: "apply", generation: 7, activeUplink: "isp2" },
      { kind: "restart-tunnels", generation: 7 },
    ]);
    expect(s.state.tunnelGeneration).toBe(7);
  });

  it("restartTunnels turning on later within a generation (cluster mode) triggers the restart", () => {
    const s = run(initialState(), [
      [{ kind: "directive", directive: d(2, "isp2", false) }, 0],
      [{ kind: "applied", generation: 2 }, 1],
      [{ kind: "directive", directive: d(2, "isp2", true) }, 2],
    ]);
    expect(ops(s.effects).at(-1)).toEqual({ kind: "restart-tunnels", generation: 2 });
  });

  it("a failure keeps lastError and retries with backoff, not before", () => {
    let s = run(initialState(), [
      [{ kind: "directive", directive: d(1, "isp2") }, 0],
      [{ kind: "apply-failed", generation: 1, error: "nmcli: connection not found" }, 100],
    ]);
    expect(s.state.lastError).toBe("nmcli: connection not found");
    expect(s.state.appliedGeneration).toBeNull();
    expect(s.effects).toContainEqual({ kind: "wake", at: 1_100 });
    // Too early: nothing.
    s = run(s.state, [[{ kind: "tick" }, 1_000]]);
    expect(ops(s.effects)).toEqual([]);
    // Due: retry; a second failure waits twice as long.
    s = run(s.state, [
      [{ kind: "tick" }, 1_100],
      [{ kind: "apply-failed", generation: 1, error: "still broken" }, 1_200],
    ]);
    expect(ops(s.effects)).toEqual([{ kind: "apply", generation: 1, activeUplink: "isp2" }]);
    expect(s.effects).toContainEqual({ kind: "wake", at: 3_200 });
    s = run(s.state, [
      [{ kind: "tick" }, 3_200],
      [{ kind: "applied", generation: 1 }, 3_300],
    ]);
    expect(s.state).toMatchObject({ appliedGeneration: 1, lastError: null, failures: 0, retryAt: null });
  });

  it("a newer generation does not wait for the retry of an older one", () => {
    const s = run(initialState(), [
      [{ kind: "directive", directive: d(1, "isp2") }, 0],
      [{ kind: "apply-failed", generation: 1, error: "x" }, 10],
      [{ kind: "directive", directive: d(2, "isp1") }, 20],
    ]);
    expect(ops(s.effects).at(-1)).toEqual({ kind: "apply", generation: 2, activeUplink: "isp1" });
  });

  it("resumes from saved state: applied but tunnels pending → restart tunnels only", () => {
    const r = step(
      initialState({ directive: d(9, "isp1", true), appliedGeneration: 9, tunnelGeneration: 8 }),
      { kind: "tick" },
      0,
      opts,
    );
    expect(ops(r.effects)).toEqual([{ kind: "restart-tunnels", generation: 9 }]);
  });

  it("property: whatever order directives and results arrive in, one operation at a time, and the newest generation ends applied", () => {
    const event = fc.oneof(
      fc.record({
        kind: fc.constant("directive" as const),
        directive: fc.record({
          generation: fc.integer({ min: 0, max: 20 }),
          activeUplink: fc.constantFrom("isp1", "isp2"),
          restartTunnels: fc.boolean(),
        }),
      }),
      fc.record({ kind: fc.constant("fail" as const) }),
      fc.record({ kind: fc.constant("ok" as const) }),
      fc.record({ kind: fc.constant("tick" as const) }),
    );
    fc.assert(
      fc.property(fc.array(event, { maxLength: 60 }), (events) => {
        let s = initialState();
        let now = 0;
        const restarts = new Map<number, number>();
        const tunnelsDone = new Set<number>();
        let maxGen = -1;
        const doneFor = (busy: ReconcilerState["busy"], ok: boolean): ReconcilerEvent =>
          busy!.op === "apply"
            ? ok
              ? { kind: "applied", generation: busy!.generation }
              : { kind: "apply-failed", generation: busy!.generation, error: "e" }
            : ok
              ? { kind: "tunnels-restarted", generation: busy!.generation }
              : { kind: "tunnels-failed", generation: busy!.generation, error: "e" };
        const feed = (e: ReconcilerEvent) => {
          const r = step(s, e, now, opts);
          for (const x of r.effects)
            if (x.kind === "restart-tunnels") {
              // Once a generation's tunnels were restarted, never again.
              expect(tunnelsDone.has(x.generation)).toBe(false);
              restarts.set(x.generation, (restarts.get(x.generation) ?? 0) + 1);
            }
          if (e.kind === "tunnels-restarted") tunnelsDone.add(e.generation);
          // One operation at a time.
          expect(ops(r.effects).length).toBeLessThanOrEqual(1);
          // A new operation starts only when none is running, or as the running one ends.
          if (ops(r.effects).length)
            expect(s.busy === null || (e.kind !== "directive" && e.kind !== "tick")).toBe(true);
          s = r.state;
        };
        for (const e of events) {
          now += 500;
          if (e.kind === "directive") {
            maxGen = Math.max(maxGen, e.directive.generation);
            feed(e);
          } else if (e.kind === "tick") feed({ kind: "tick" });
          else if (s.busy) feed(doneFor(s.busy, e.kind === "ok"));
        }
        // Drain: let every retry succeed.
        for (let i = 0; i < 10; i++) {
          now += 1_000_000;
          if (s.busy) feed(doneFor(s.busy, true));
          else feed({ kind: "tick" });
        }
        if (maxGen >= 0) {
          expect(s.directive?.generation).toBe(maxGen);
          expect(s.appliedGeneration).toBe(maxGen);
          if (s.directive!.restartTunnels) expect(s.tunnelGeneration).toBe(maxGen);
        }
        // Tunnels are restarted successfully at most once per generation: a repeat only follows a failure.
        expect(s.busy).toBeNull();
      }),
    );
  });
});

describe("reconciler: route drift (level-triggered)", () => {
  /** A host with IPv4 only, its default route through `uplink`. */
  const v4 = (uplink: string | null) => ({ ipv4: uplink, ipv6: null, withIpv6: [] });
  const onIsp2 = () =>
    run(initialState(), [
      [{ kind: "directive", directive: d(2, "isp2", true) }, 0],
      [{ kind: "applied", generation: 2 }, 10],
      [{ kind: "tunnels-restarted", generation: 2 }, 20],
    ]).state;
  const repaired = (effects: Effect[]) => effects.filter((e) => e.kind === "drift-repaired");

  it("re-applies the current directive when the routes leave it, once, and reports the repair with its time", () => {
    const s = run(onIsp2(), [
      [{ kind: "routes", routed: v4("isp1") }, 1_000],
      [{ kind: "routes", routed: v4("isp1") }, 1_100],
      [{ kind: "applied", generation: 2 }, 1_300],
    ]);
    expect(ops(s.effects)).toEqual([{ kind: "apply", generation: 2, activeUplink: "isp2" }]);
    expect(repaired(s.effects)).toEqual([
      { kind: "drift-repaired", at: 1_000, routed: v4("isp1"), activeUplink: "isp2", repairedInMs: 300 },
    ]);
    expect(s.state).toMatchObject({ drift: null, appliedGeneration: 2, tunnelGeneration: 2, busy: null });
  });

  it("takes a host without any default route for a drift too", () => {
    const s = run(onIsp2(), [[{ kind: "routes", routed: v4(null) }, 1_000]]);
    expect(ops(s.effects)).toEqual([{ kind: "apply", generation: 2, activeUplink: "isp2" }]);
  });

  it("takes IPv6 leaving through another uplink for a drift, unless the active uplink has no IPv6 to offer", () => {
    const both = ["isp1", "isp2"];
    expect(
      ops(
        step(onIsp2(), { kind: "routes", routed: { ipv4: "isp2", ipv6: "isp1", withIpv6: both } }, 1_000, opts).effects,
      ),
    ).toEqual([{ kind: "apply", generation: 2, activeUplink: "isp2" }]);
    expect(
      step(onIsp2(), { kind: "routes", routed: { ipv4: "isp2", ipv6: "isp2", withIpv6: both } }, 1_000, opts).effects,
    ).toEqual([]);
    // IPv6 on isp1 only: it can only leave that way, and re-applying would change nothing.
    expect(
      step(onIsp2(), { kind: "routes", routed: { ipv4: "isp2", ipv6: "isp1", withIpv6: ["isp1"] } }, 1_000, opts)
        .effects,
    ).toEqual([]);
  });

  it("sees no drift while the routes agree, before anything was applied, or while a switch is under way", () => {
    expect(step(onIsp2(), { kind: "routes", routed: v4("isp2") }, 1_000, opts).effects).toEqual([]);
    expect(step(initialState(), { kind: "routes", routed: v4("isp1") }, 0, opts).effects).toEqual([]);
    const switching = step(onIsp2(), { kind: "directive", directive: d(3, "isp1") }, 1_000, opts).state;
    expect(switching.busy).toEqual({ op: "apply", generation: 3 });
    expect(step(switching, { kind: "routes", routed: v4("isp2") }, 1_001, opts).state.drift).toBeNull();
    const failed = step(
      switching,
      { kind: "apply-failed", generation: 3, error: "nmcli: timed out" },
      1_002,
      opts,
    ).state;
    expect(ops(step(failed, { kind: "routes", routed: v4("isp2") }, 1_003, opts).effects)).toEqual([]);
  });

  it("a failed repair is retried with backoff; a newer directive replaces the repair", () => {
    const failing = run(onIsp2(), [
      [{ kind: "routes", routed: v4("isp1") }, 1_000],
      [{ kind: "apply-failed", generation: 2, error: "RTNETLINK answers: Operation not permitted" }, 1_050],
    ]);
    expect(failing.state.drift).toEqual({ since: 1_000, routed: v4("isp1") });
    expect(failing.effects).toContainEqual({ kind: "wake", at: 2_050 });
    expect(ops(step(failing.state, { kind: "tick" }, 2_050, opts).effects)).toEqual([
      { kind: "apply", generation: 2, activeUplink: "isp2" },
    ]);
    const superseded = run(failing.state, [
      [{ kind: "directive", directive: d(3, "isp1") }, 1_500],
      [{ kind: "applied", generation: 3 }, 1_600],
    ]);
    expect(ops(superseded.effects)).toEqual([{ kind: "apply", generation: 3, activeUplink: "isp1" }]);
    expect(repaired(superseded.effects)).toEqual([]);
    expect(superseded.state.drift).toBeNull();
  });
});
