import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { PathQuality } from "#shared";
import {
  degradedBy,
  initialState,
  restoredState,
  step,
  type DecisionState,
  type SiteShape,
  type SwitchReason,
} from "../../worker/src/engine/decision.ts";

const policy = {
  heartbeatMs: 1_000,
  downAfterMs: 3_000,
  failbackAfterMs: 60_000,
  minDwellMs: 10_000,
  degradedLossRatio: 0.2,
  degradedRttMs: 500,
  witnessQuorum: 2,
  meteredHeartbeatMs: 30_000,
  meteredCheckMs: 600_000,
};
const shape: SiteShape = {
  uplinks: [
    { id: "isp1", priority: 1 },
    { id: "isp2", priority: 2 },
  ],
  policy,
};
const path = (lossRatio: number, rttMs: number | null = 30, samples = 60): PathQuality => ({
  lossRatio,
  rttMs,
  samples,
});
const good = path(0);

/** Both uplinks heartbeat every second for `seconds`, their probes reporting these paths; returns the switches. */
function beat(
  s: { state: DecisionState; now: number },
  seconds: number,
  paths: { isp1: PathQuality; isp2: PathQuality },
) {
  const switches: { at: number; to: string; reason: SwitchReason }[] = [];
  for (let i = 0; i < seconds; i++) {
    s.now += 1_000;
    for (const uplink of ["isp1", "isp2"] as const) {
      const r = step(s.state, { kind: "heartbeat", uplink, path: paths[uplink] }, s.now, shape);
      s.state = r.state;
      for (const e of r.effects) if (e.kind === "switch") switches.push({ at: s.now, to: e.to, reason: e.reason });
    }
  }
  return switches;
}

function settledSite() {
  const s = { state: initialState(shape, 0), now: 0 };
  beat(s, 70, { isp1: good, isp2: good });
  expect(s.state.active).toBe("isp1");
  return s;
}

describe("degraded uplinks", () => {
  it("judges loss and latency with hysteresis, and not on too few samples", () => {
    expect(degradedBy(path(0.2), false, policy)).toBe(true);
    expect(degradedBy(path(0.19), false, policy)).toBe(false);
    expect(degradedBy(path(0, 500), false, policy)).toBe(true);
    // Once degraded: healthy again only under half the loss and 80 % of the latency.
    expect(degradedBy(path(0.15), true, policy)).toBe(true);
    expect(degradedBy(path(0.09), true, policy)).toBe(false);
    expect(degradedBy(path(0, 450), true, policy)).toBe(true);
    expect(degradedBy(path(0, 390), true, policy)).toBe(false);
    expect(degradedBy(path(1, null, 19), false, policy)).toBe(false);
    expect(degradedBy(path(0, 30, 19), true, policy)).toBe(true);
  });

  it("a degraded primary hands over to a healthy backup, and the site returns after the failback hold-down from its recovery", () => {
    const s = settledSite();
    const away = beat(s, 5, { isp1: path(0.3), isp2: good });
    expect(away).toEqual([{ at: expect.any(Number), to: "isp2", reason: "degraded" }]);
    expect(s.state.uplinks.isp1).toMatchObject({ state: "up", degraded: true });
    // Still degraded at 15 %: no return; recovered at 5 %: the return waits failbackAfterMs from then.
    expect(beat(s, 30, { isp1: path(0.15), isp2: good })).toEqual([]);
    const recovered = s.now + 1_000;
    const back = beat(s, 70, { isp1: path(0.05), isp2: good });
    expect(back).toEqual([{ at: recovered + 60_000, to: "isp1", reason: "failback" }]);
  });

  it("waits out minDwellMs before leaving a degraded uplink (it still works), but not a dead one", () => {
    const s = settledSite();
    // A failover to isp2 and back just now: the dwell is running.
    s.state = { ...s.state, lastSwitchAt: s.now };
    const first = beat(s, 12, { isp1: path(0.5), isp2: good });
    expect(first).toHaveLength(1);
    expect(first[0]!.at - (s.now - 12_000)).toBeGreaterThanOrEqual(10_000);

    // The same dwell running, and the active uplink dies instead: the backup takes over as soon
    // as the silence is judged (downAfterMs), long before the dwell ends.
    const dead = settledSite();
    const switchedAt = dead.now;
    dead.state = { ...dead.state, lastSwitchAt: switchedAt };
    const moved: { at: number; to: string; reason: SwitchReason }[] = [];
    for (let i = 0; i < 5; i++) {
      dead.now += 1_000;
      const r = step(dead.state, { kind: "heartbeat", uplink: "isp2", path: good }, dead.now, shape);
      dead.state = r.state;
      for (const e of r.effects) if (e.kind === "switch") moved.push({ at: dead.now, to: e.to, reason: e.reason });
    }
    expect(moved).toEqual([{ at: switchedAt + 3_000, to: "isp2", reason: "failover" }]);
  });

  it("stays when every uplink is degraded, and a degraded backup is no reason to move", () => {
    const s = settledSite();
    expect(beat(s, 30, { isp1: good, isp2: path(0.9) })).toEqual([]);
    expect(beat(s, 30, { isp1: path(0.5), isp2: path(0.9) })).toEqual([]);
    expect(s.state.active).toBe("isp1");
  });

  it("found in review: never leaves a degraded uplink for a backup that has gone quiet, nor returns to a primary still degraded", () => {
    const s = settledSite();
    // isp2 silent for 2.5 s: still "up", but too quiet to take over (the failover rule).
    s.now += 1_000;
    s.state = step(s.state, { kind: "heartbeat", uplink: "isp2", path: good }, s.now, shape).state;
    s.now += 2_500;
    const r = step(s.state, { kind: "heartbeat", uplink: "isp1", path: path(0.5) }, s.now, shape);
    expect(r.effects.filter((e) => e.kind === "switch")).toEqual([]);
    // Both degraded, one after the other: one move away, none back while isp1 is still degraded.
    const t = settledSite();
    expect(beat(t, 5, { isp1: path(0.5), isp2: good }).map((x) => x.reason)).toEqual(["degraded"]);
    expect(beat(t, 120, { isp1: path(0.5), isp2: path(0.5) })).toEqual([]);
  });

  it("a verdict its probe no longer renews lapses after a minute: the servers' heartbeats alone bring the site back", () => {
    const s = settledSite();
    expect(beat(s, 5, { isp1: path(0.5), isp2: good }).map((x) => x.reason)).toEqual(["degraded"]);
    // isp1's probe dies; the servers still heartbeat through isp1 (no path: they measure none).
    const quality: { at: number; degraded: boolean; path: PathQuality | null }[] = [];
    const switches: string[] = [];
    const silentSince = s.now;
    for (let i = 0; i < 130; i++) {
      s.now += 1_000;
      for (const [uplink, p] of [
        ["isp1", undefined],
        ["isp2", good],
      ] as const) {
        const r = step(s.state, { kind: "heartbeat", uplink, path: p }, s.now, shape);
        s.state = r.state;
        for (const e of r.effects) {
          if (e.kind === "uplink-quality") quality.push({ at: s.now, degraded: e.degraded, path: e.path });
          if (e.kind === "switch") switches.push(`${e.to}@${e.reason}@${s.now - silentSince}`);
        }
      }
    }
    expect(quality).toEqual([{ at: silentSince + 60_000, degraded: false, path: null }]);
    // Healthy again from the lapse: the same failback hold-down as a recovery.
    expect(switches).toEqual([`isp1@failback@${60_000 + 60_000}`]);
  });

  it("a degraded uplink back from a long outage keeps its verdict until its probe has a minute's say", () => {
    const s = settledSite();
    beat(s, 5, { isp1: path(0.5), isp2: good });
    // isp1 silent for 90 s, then a server's heartbeat through it comes first (no path).
    for (let i = 0; i < 90; i++)
      (s.now += 1_000),
        (s.state = step(s.state, { kind: "heartbeat", uplink: "isp2", path: good }, s.now, shape).state);
    expect(s.state.uplinks.isp1).toMatchObject({ state: "down", degraded: true });
    s.now += 500;
    const r = step(s.state, { kind: "heartbeat", uplink: "isp1" }, s.now, shape);
    expect(r.effects.filter((e) => e.kind === "uplink-quality")).toEqual([]);
    expect(r.state.uplinks.isp1).toMatchObject({ state: "up", degraded: true });
  });

  it("a restart gives a degraded verdict a full minute for its probe to renew it", () => {
    const s = settledSite();
    beat(s, 5, { isp1: path(0.5), isp2: good });
    s.now += 120_000;
    s.state = restoredState(s.state, shape, s.now);
    // A server's heartbeat through isp1 first, then the probe's report: no lapse between them.
    const r = step(s.state, { kind: "heartbeat", uplink: "isp1" }, s.now + 100, shape);
    expect(r.effects).toEqual([]);
    expect(r.state.uplinks.isp1!.degraded).toBe(true);
  });

  it("prefers a healthy uplink over a degraded one when the active one dies", () => {
    const three: SiteShape = { ...shape, uplinks: [...shape.uplinks, { id: "isp3", priority: 3 }] };
    let state = initialState(three, 0);
    let now = 0;
    const all = (paths: Record<string, PathQuality>, speakers: string[]) => {
      for (const u of speakers) {
        const r = step(state, { kind: "heartbeat", uplink: u, path: paths[u] }, now, three);
        state = r.state;
        for (const e of r.effects) if (e.kind === "switch") last = e.to;
      }
    };
    let last: string | null = null;
    for (; now < 70_000; now += 1_000) all({ isp1: good, isp2: path(0.6), isp3: good }, ["isp1", "isp2", "isp3"]);
    for (; now < 80_000; now += 1_000) all({ isp2: path(0.6), isp3: good }, ["isp2", "isp3"]);
    expect(last).toBe("isp3");
  });

  it("property: constant loss under half the threshold never moves a settled site, whatever the jitter", () => {
    fc.assert(
      fc.property(
        fc.array(fc.double({ min: 0, max: 0.099, noNaN: true }), { minLength: 60, maxLength: 200 }),
        (losses) => {
          const s = settledSite();
          const moved = losses.flatMap((l) => beat(s, 1, { isp1: path(l), isp2: good }));
          return moved.length === 0;
        },
      ),
      { numRuns: 200 },
    );
  });
});
