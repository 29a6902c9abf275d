import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { T0, backstopMs, run, shape, statesOf, type Act } from "./decision-harness.ts";
import type { SiteShape } from "../../worker/src/engine/decision.ts";

/** isp1 unmetered (primary), isp2 metered, watched every `meteredMs` while it stands by. */
const meteredSite = (downAfterMs: number, meteredMs: number): SiteShape => {
  const s = shape({ downAfterMs, meteredHeartbeatMs: meteredMs, meteredCheckMs: 10 * meteredMs });
  return { ...s, uplinks: [s.uplinks[0]!, { ...s.uplinks[1]!, metered: true }] };
};

/** The standby's silence window, by the policy's own words: downAfterMs heartbeats' worth at its interval. */
const slowDownMs = (downAfterMs: number, meteredMs: number) => Math.round((downAfterMs * meteredMs) / 1_000);

const beats = (uplink: string, from: number, gaps: readonly number[]): Act[] => {
  let at = from;
  return gaps.map((g) => ({ at: (at += g), kind: "beat", uplink }) as Act);
};

/** isp1 every 800–1,200 ms and isp2 at gaps under its slow window, both from T0, for `ms`. */
const steady = fc
  .record({
    downAfterMs: fc.integer({ min: 2_000, max: 6_000 }),
    meteredMs: fc.integer({ min: 2_000, max: 60_000 }),
    ms: fc.integer({ min: 0, max: 300_000 }),
    seed: fc.integer(),
    slack: fc.double({ min: 0.05, max: 1, noNaN: true }),
  })
  .map(({ downAfterMs, meteredMs, ms, seed, slack }) => {
    const rand = mulberry(seed);
    const fast: number[] = [];
    for (let t = 0; t < ms; ) t += fast[fast.push(800 + Math.floor(rand() * 400)) - 1]!;
    const slow: number[] = [];
    // Any gap under the window, up to `slack` of it: the watcher late, jittery, its beat lost once.
    const most = Math.max(1, Math.floor(slack * (slowDownMs(downAfterMs, meteredMs) - 1)));
    for (let t = 0; t < ms; ) t += slow[slow.push(1 + Math.floor(rand() * most)) - 1]!;
    return { downAfterMs, meteredMs, fast, slow };
  });

function mulberry(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

const sorted = (acts: Act[]) => [...acts].sort((a, b) => a.at - b.at);

describe("a metered standby watched slowly", () => {
  it("is never called down, nor the site moved, while heard within its slow window", () => {
    fc.assert(
      fc.property(steady, ({ downAfterMs, meteredMs, fast, slow }) => {
        // Up to where both streams still run.
        const end = T0 + fast.reduce((a, b) => a + b, 0) - 1_200;
        const acts = sorted([...beats("isp1", T0, fast), ...beats("isp2", T0, slow)]).filter((a) => a.at <= end);
        const r = run(meteredSite(downAfterMs, meteredMs), acts);
        expect(statesOf(r).filter((s) => s.to === "down")).toEqual([]);
        expect(r.switches.map((s) => s.effect.reason)).toEqual(
          acts.some((a) => a.kind === "beat" && a.uplink === "isp1") ? ["initial"] : [],
        );
      }),
      { numRuns: 300 },
    );
  });

  it("is called down at the first judgement a slow window after its last heartbeat, not before", () => {
    fc.assert(
      fc.property(steady, fc.integer({ min: 1, max: 5 }), ({ downAfterMs, meteredMs, fast, slow }, more) => {
        const slowAll = beats("isp2", T0, slow);
        const last = slowAll.at(-1)?.at ?? T0;
        const window = slowDownMs(downAfterMs, meteredMs);
        // isp1 goes on beating past the window; isp2 says nothing more.
        const end = last + window + more * 1_000;
        const fastAll = beats("isp1", T0, fast);
        for (let t = fastAll.at(-1)?.at ?? T0; t < end; )
          fastAll.push({ at: (t += 1_000), kind: "beat", uplink: "isp1" });
        const acts = sorted([...fastAll, ...slowAll]);
        const r = run(meteredSite(downAfterMs, meteredMs), acts);
        const down = statesOf(r).filter((s) => s.uplink === "isp2" && s.to === "down");
        expect(down).toHaveLength(1);
        // The first step at or after the deadline: isp1's beats judge every uplink.
        const judged = acts.find((a) => a.at >= last + window)!.at;
        expect(down[0]!.at).toBe(judged);
      }),
      { numRuns: 300 },
    );
  });

  it("takes over from a cut primary as fast as an unmetered backup: at the first heartbeat downAfterMs after the primary's last", () => {
    fc.assert(
      fc.property(steady, fc.integer({ min: 0, max: 2_500 }), ({ downAfterMs, meteredMs, fast }, speedUp) => {
        // The watcher beats on its nominal interval until the servers speed the standby up.
        const fastAll = beats("isp1", T0, fast.length ? fast : [1_000]);
        const cutAt = fastAll.at(-1)!.at;
        const slowAll = beats(
          "isp2",
          T0,
          Array.from({ length: Math.floor((cutAt - T0 + speedUp) / meteredMs) }, () => meteredMs),
        );
        const quick = beats("isp2", cutAt + speedUp - 1_000, Array(10).fill(1_000));
        const acts = sorted([...fastAll, ...slowAll, ...quick]);
        const r = run(meteredSite(downAfterMs, meteredMs), acts);
        const failover = r.switches.filter((s) => s.effect.reason === "failover");
        expect(failover.map((s) => s.effect.to)).toEqual(["isp2"]);
        expect(failover[0]!.at).toBe(acts.find((a) => a.at >= cutAt + downAfterMs)!.at);
      }),
      { numRuns: 300 },
    );
  });

  it("heard within its own slow interval, it is fit to take over when the alarm judges a cut primary", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 2_000, max: 6_000 }),
        fc.integer({ min: 2_000, max: 60_000 }),
        fc.double({ min: 0.01, max: 0.99, noNaN: true }),
        (downAfterMs, meteredMs, ago) => {
          const cutAt = T0 + 10_000;
          const alarmAt = cutAt + downAfterMs + backstopMs(downAfterMs);
          // No message after the cut but the watcher's, last heard `ago` of its interval before the alarm.
          const lastSlow = alarmAt - Math.max(1, Math.floor(ago * meteredMs));
          fc.pre(lastSlow > T0);
          const slowAll: Act[] = [];
          for (let t = lastSlow; t >= T0; t -= meteredMs) slowAll.push({ at: t, kind: "beat", uplink: "isp2" });
          const acts = sorted([...beats("isp1", T0, Array(10).fill(1_000)), ...slowAll]);
          const r = run(meteredSite(downAfterMs, meteredMs), acts, alarmAt + 1);
          const judgedAt = Math.min(alarmAt, acts.find((a) => a.at >= cutAt + downAfterMs)?.at ?? alarmAt);
          const failover = r.switches.filter((s) => s.effect.reason === "failover");
          expect(failover.map((s) => [s.at, s.effect.to])).toEqual([[judgedAt, "isp2"]]);
        },
      ),
      { numRuns: 300 },
    );
  });

  it("returns from it to the primary after meteredFailbackAfterMs, when shorter than failbackAfterMs", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 60_000 }),
        fc.integer({ min: 0, max: 60_000 }),
        fc.integer({ min: 5, max: 30 }),
        (meteredFailback, longer, outageS) => {
          const sh = meteredSite(3_000, 30_000);
          const site = {
            ...sh,
            policy: {
              ...sh.policy,
              minDwellMs: 0,
              failbackAfterMs: meteredFailback + longer,
              meteredFailbackAfterMs: meteredFailback,
            },
          };
          // isp1 beats, is cut for `outageS` seconds, then beats again; isp2 beats every second throughout.
          const back = T0 + 10_000 + outageS * 1_000;
          const end = back + meteredFailback + longer + 5_000;
          const acts: Act[] = [];
          for (let t = T0 + 1_000; t <= end; t += 1_000) {
            acts.push({ at: t, kind: "beat", uplink: "isp2" });
            if (t <= T0 + 10_000 || t >= back) acts.push({ at: t + 1, kind: "beat", uplink: "isp1" });
          }
          const r = run(site, sorted(acts));
          expect(r.switches.map((x) => x.effect.reason)).toEqual(["initial", "failover", "failback"]);
          // Up again from its first heartbeat back; returned to at the first heartbeat the hold-down after.
          const due = acts.find((a) => a.at >= back + 1 + meteredFailback)!.at;
          expect(r.switches[2]!.at).toBe(due);
        },
      ),
      { numRuns: 200 },
    );
  });

  it("once active it is judged at full rate: silent downAfterMs after the switch or its last heartbeat since, it is down", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 2_000, max: 6_000 }),
        fc.integer({ min: 5_000, max: 60_000 }),
        fc.integer({ min: 0, max: 5 }),
        (downAfterMs, meteredMs, after) => {
          // isp2 heard once; isp1 dies a little later; isp2 then beats `after` times at full rate
          // and falls silent, while isp1 comes back.
          const acts: Act[] = [
            ...beats("isp1", T0, Array(5).fill(1_000)),
            { at: T0 + 1_500, kind: "beat", uplink: "isp2" },
          ];
          const switchAt = T0 + 5_000 + downAfterMs;
          acts.push({ at: switchAt, kind: "beat", uplink: "isp2" });
          acts.push(...beats("isp2", switchAt, Array(after).fill(1_000)));
          acts.push(...beats("isp1", switchAt + 500, Array(Math.ceil((2 * downAfterMs) / 1_000) + 6).fill(1_000)));
          const r = run(meteredSite(downAfterMs, meteredMs), sorted(acts));
          expect(r.switches.find((s) => s.effect.reason === "failover")?.at).toBe(switchAt);
          const last = switchAt + after * 1_000;
          const down = statesOf(r).find((s) => s.uplink === "isp2" && s.to === "down" && s.at > switchAt);
          expect(down?.at).toBe(sorted(acts).find((a) => a.at >= last + downAfterMs)!.at);
        },
      ),
      { numRuns: 300 },
    );
  });

  it("made active without a heartbeat through it (an override), it must be heard within downAfterMs of that moment", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 2_000, max: 6_000 }),
        fc.integer({ min: 5_000, max: 60_000 }),
        fc.double({ min: 0, max: 1, noNaN: true }),
        (downAfterMs, meteredMs, when) => {
          const lastSlow = T0 + 1_000;
          // Pinned while still heard within its slow window; isp1 beats on; isp2 says nothing more.
          const pinAt = lastSlow + 1 + Math.floor(when * (slowDownMs(downAfterMs, meteredMs) - 2));
          const acts = sorted([
            ...beats("isp1", T0, Array(Math.ceil((pinAt - T0) / 1_000) + 12).fill(1_000)),
            { at: lastSlow, kind: "beat", uplink: "isp2" },
            { at: pinAt, kind: "override", uplink: "isp2", forMs: 3_600_000 },
          ]);
          const r = run(meteredSite(downAfterMs, meteredMs), acts);
          const deadline = Math.min(lastSlow + slowDownMs(downAfterMs, meteredMs), pinAt + downAfterMs);
          const down = statesOf(r).find((s) => s.uplink === "isp2" && s.to === "down");
          expect(down?.at).toBe(acts.find((a) => a.at >= deadline)!.at);
        },
      ),
      { numRuns: 300 },
    );
  });
});
