import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  initialReplicas,
  stepReplicas,
  type ReplicaEffect,
  type ReplicaEvent,
  type ReplicasState,
} from "../../agent/src/directive/replicas.ts";

const SILENCE = 3_000;
const retryDelay = (failures: number) => 1_000 * 2 ** failures;

function run(events: ReplicaEvent[], s: ReplicasState = initialReplicas(["isp1", "isp2"], 0)) {
  const effects: ReplicaEffect[] = [];
  for (const e of events) {
    const r = stepReplicas(s, e, retryDelay);
    s = r.state;
    effects.push(...r.effects);
  }
  return { state: s, effects };
}
const contact = (uplink: string, at: number): ReplicaEvent => ({ kind: "contact", uplink, at, silenceMs: SILENCE });
const restarted = (uplink: string, at: number, error: string | null = null): ReplicaEvent => ({
  kind: "restarted",
  uplink,
  at,
  error,
});
/** Both uplinks answering every second from `from` to `to` (exclusive), except `silent` ones. */
const beats = (from: number, to: number, silent: string[] = []) =>
  Array.from({ length: (to - from) / 1_000 }, (_, i) => from + i * 1_000).flatMap((at) =>
    ["isp1", "isp2"].filter((u) => !silent.includes(u)).map((u) => contact(u, at)),
  );

describe("pinned tunnel replicas", () => {
  it("restart nothing while both uplinks answer, nor on the cut itself", () => {
    expect(run([...beats(0, 10_000), ...beats(10_000, 20_000, ["isp1"])]).effects).toEqual([]);
  });

  it("restart only the returning uplink's replica, at its first answer", () => {
    const { effects } = run([...beats(0, 10_000), ...beats(10_000, 20_000, ["isp1"]), contact("isp1", 20_000)]);
    expect(effects).toEqual([{ kind: "restart", uplink: "isp1", silentMs: 11_000, attempt: 0 }]);
  });

  it("restart nothing after a silence no longer than downAfterMs", () => {
    expect(run([...beats(0, 5_000), ...beats(5_000, 7_000, ["isp1"]), contact("isp1", 7_000)]).effects).toEqual([]);
  });

  it("restart at most the later of the uplinks that answer again after every uplink was silent", () => {
    // isp2 answered once early in isp1's silence, then both were silent (the edge unreachable, say).
    const { effects } = run([
      ...beats(0, 5_000),
      contact("isp2", 5_000),
      contact("isp1", 20_000),
      contact("isp2", 20_100),
    ]);
    expect(effects).toEqual([{ kind: "restart", uplink: "isp2", silentMs: 15_100, attempt: 0 }]);
  });

  it("count an uplink silent since the agent started as one that comes back", () => {
    const { effects } = run([...beats(0, 10_000, ["isp2"]), contact("isp2", 10_000)]);
    expect(effects).toEqual([{ kind: "restart", uplink: "isp2", silentMs: 10_000, attempt: 0 }]);
  });

  it("retry a failed restart with backoff, on the uplink's answers, until it works", () => {
    const back = [...beats(0, 5_000), ...beats(5_000, 10_000, ["isp1"]), contact("isp1", 10_000)];
    const failed = [...back, restarted("isp1", 10_500, "docker: command not found")];
    // The retry is due at 12_500 (backoff 2 s after the first failure): not on the answers before.
    expect(run([...failed, contact("isp1", 11_000), contact("isp1", 12_000)]).effects).toHaveLength(1);
    const { state, effects } = run([
      ...failed,
      contact("isp1", 11_000),
      contact("isp1", 12_000),
      contact("isp1", 13_000),
      restarted("isp1", 13_200),
      contact("isp1", 14_000),
    ]);
    expect(effects).toEqual([
      { kind: "restart", uplink: "isp1", silentMs: 6_000, attempt: 0 },
      { kind: "restart", uplink: "isp1", silentMs: 6_000, attempt: 1 },
    ]);
    expect(state.uplinks.isp1).toMatchObject({
      running: false,
      owedAfterMs: null,
      failures: 0,
      retryAt: null,
      restartedAt: 13_200,
      lastError: null,
    });
    expect(run(failed).state.uplinks.isp1).toMatchObject({ lastError: "docker: command not found", retryAt: 12_500 });
  });

  it("owe one more restart when the uplink comes back again while one runs", () => {
    const { effects } = run([
      ...beats(0, 5_000),
      contact("isp2", 8_000),
      contact("isp1", 9_000), // back (isp2 answered in its silence): restart 1 starts
      contact("isp2", 10_000),
      contact("isp2", 14_000),
      contact("isp1", 14_000), // back again while restart 1 runs
      restarted("isp1", 14_500),
      contact("isp1", 15_000),
    ]);
    expect(effects.map((e) => [e.uplink, e.silentMs])).toEqual([
      ["isp1", 5_000],
      ["isp1", 5_000],
    ]);
  });

  it("ignore an uplink it has no replica for", () => {
    const s = initialReplicas(["isp1", "isp2"], 0);
    expect(stepReplicas(s, contact("isp9", 1), retryDelay)).toEqual({ state: s, effects: [] });
  });

  // Oracle of its own: a restart is owed by every answer of an uplink after another answered when
  // this one had been silent > SILENCE, and is served by the first restart that starts at or after
  // it and succeeds.
  it("restarts only returning uplinks, one at a time each, and serves every return (property)", () => {
    const uplinks = ["a", "b", "c"];
    const step = fc.record({
      uplink: fc.constantFrom(...uplinks),
      gap: fc.integer({ min: 100, max: 8_000 }),
      fails: fc.boolean(),
      takes: fc.integer({ min: 0, max: 3_000 }),
    });
    fc.assert(
      fc.property(fc.array(step, { maxLength: 80 }), (steps) => {
        let s = initialReplicas(uplinks, 0);
        let t = 0;
        const heard: Record<string, number> = {};
        const owed: Record<string, number> = {}; // returns not yet served
        const inFlight: Record<string, { endsAt: number; fails: boolean; owedThen: number }> = {};
        const finish = (upTo: number) => {
          for (const [u, f] of Object.entries(inFlight).sort((x, y) => x[1].endsAt - y[1].endsAt)) {
            if (f.endsAt > upTo) continue;
            delete inFlight[u];
            s = stepReplicas(s, restarted(u, f.endsAt, f.fails ? "failed" : null), retryDelay).state;
            if (!f.fails) owed[u] = (owed[u] ?? 0) - f.owedThen;
          }
        };
        for (const x of steps) {
          t += x.gap;
          finish(t);
          const since = heard[x.uplink] ?? 0;
          const back = uplinks.some((o) => o !== x.uplink && (heard[o] ?? -1) > since + SILENCE);
          heard[x.uplink] = t;
          if (back) owed[x.uplink] = (owed[x.uplink] ?? 0) + 1;
          const r = stepReplicas(s, contact(x.uplink, t), retryDelay);
          s = r.state;
          for (const e of r.effects) {
            expect(e.uplink).toBe(x.uplink);
            // Only a return not yet served starts a restart, and never beside a running one.
            expect(owed[e.uplink] ?? 0).toBeGreaterThan(0);
            expect(inFlight[e.uplink]).toBeUndefined();
            inFlight[e.uplink] = { endsAt: t + x.takes, fails: x.fails, owedThen: owed[e.uplink]! };
          }
          // A return while nothing runs and no retry is pending starts its restart at once.
          if (back && !inFlight[x.uplink]) expect.fail(`${x.uplink} came back at ${t} and nothing was restarted`);
        }
        finish(Number.POSITIVE_INFINITY);
        // Whatever is still owed is marked owed in the state, for the next answer.
        for (const u of uplinks) expect(s.uplinks[u]!.owedAfterMs !== null).toBe((owed[u] ?? 0) > 0);
      }),
      { seed: 20261203, numRuns: 500 },
    );
  });
});
