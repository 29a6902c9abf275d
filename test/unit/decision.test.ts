// The decision engine's smaller rules, each with its exact answer (the properties cover histories).
import { describe, expect, it } from "vitest";
import {
  degradedBy,
  initialState,
  nextDeadline,
  reshapedState,
  restoredState,
  runtimeOf,
  siteMode,
  step,
  type DecisionState,
  type UplinkRuntime,
} from "../../worker/src/engine/decision.ts";
import { shape } from "./decision-harness.ts";

const sh = shape({ downAfterMs: 3_000, failbackAfterMs: 1_000, minDwellMs: 0 });
const up = (lastHeardAt: number, over: Partial<UplinkRuntime> = {}): UplinkRuntime => ({
  lastHeardAt,
  state: "up",
  stateSince: 0,
  upSince: 0,
  ...over,
});
const state = (over: Partial<DecisionState>): DecisionState => ({ ...initialState(sh, 0), ...over });

describe("decision engine rules", () => {
  it("names the site's mode: offline with no uplink up, override while one is pinned, auto otherwise", () => {
    expect(siteMode(initialState(sh, 0))).toBe("offline");
    const live = state({ uplinks: { isp1: up(10), isp2: { ...up(10), state: "down" } } });
    expect(siteMode(live)).toBe("auto");
    expect(siteMode({ ...live, override: { uplink: "isp2", until: 99, reason: "x" } })).toBe("override");
    expect(siteMode({ ...initialState(sh, 0), override: { uplink: "isp2", until: 99, reason: "x" } })).toBe("offline");
  });

  it("finds an uplink's runtime by its own keys only", () => {
    const uplinks = { isp1: up(1) };
    expect(runtimeOf(uplinks, "isp1")).toBe(uplinks.isp1);
    expect(runtimeOf(uplinks, "constructor")).toBeUndefined();
    expect(runtimeOf(uplinks, "toString")).toBeUndefined();
  });

  it("after a restart: an up uplink gets a full grace, a degraded verdict a full minute, the rest keep their past", () => {
    const saved = state({
      observedSince: 0,
      uplinks: {
        isp1: up(100, { degraded: true, pathAt: 50 }),
        isp2: { lastHeardAt: 40, state: "down", stateSince: 60, upSince: null, degraded: true, pathAt: 30 },
      },
      active: "isp1",
      generation: 3,
    });
    const r = restoredState(saved, shape({}, 3), 5_000);
    expect(r).toEqual({
      ...saved,
      observedSince: 5_000,
      uplinks: {
        isp1: up(5_000, { degraded: true, pathAt: 5_000 }),
        isp2: { lastHeardAt: 40, state: "down", stateSince: 60, upSince: null, degraded: true, pathAt: 5_000 },
        isp3: { lastHeardAt: null, state: "unknown", stateSince: 5_000, upSince: null },
      },
    });
    expect(
      restoredState(state({ uplinks: { isp1: up(100), isp2: up(90, { degraded: false, pathAt: 7 }) } }), sh, 200)
        .uplinks,
    ).toEqual({ isp1: up(200), isp2: up(200, { degraded: false, pathAt: 7 }) });
  });

  it("a new config keeps the runtime of uplinks that stay, adds new ones unheard, drops removed ones and an override of one", () => {
    const before = state({
      observedSince: 1_000,
      uplinks: { isp1: up(900), isp2: up(800) },
      override: { uplink: "isp2", until: 9_000, reason: "x" },
    });
    const next = {
      ...sh,
      uplinks: [
        { id: "isp1", priority: 1 },
        { id: "isp3", priority: 2 },
      ],
    };
    expect(reshapedState(before, next, 2_000)).toEqual({
      ...before,
      uplinks: { isp1: up(900), isp3: { lastHeardAt: null, state: "unknown", stateSince: 2_000, upSince: null } },
      override: null,
    });
    expect(reshapedState(before, sh, 500)).toEqual({ ...before, observedSince: 500 });
  });

  it("ends an override when cleared, or when its time is up, and says which", () => {
    const pinned = state({
      uplinks: { isp1: up(10), isp2: up(10) },
      active: "isp2",
      generation: 2,
      override: { uplink: "isp2", until: 5_000, reason: "x" },
    });
    expect(step(pinned, { kind: "override-cleared" }, 100, sh).effects).toContainEqual({
      kind: "override-ended",
      uplink: "isp2",
      expired: false,
    });
    expect(step(pinned, { kind: "tick" }, 4_999, sh).state.override).not.toBeNull();
    const expired = step(pinned, { kind: "tick" }, 5_000, sh);
    expect(expired.state.override).toBeNull();
    expect(expired.effects).toContainEqual({ kind: "override-ended", uplink: "isp2", expired: true });
    expect(step(state({}), { kind: "override-cleared" }, 100, sh).effects).toEqual([]);
    // A heartbeat for an uplink the site does not have changes nothing.
    const s = state({ uplinks: { isp1: up(10), isp2: up(10) } });
    expect(step(s, { kind: "heartbeat", uplink: "constructor" }, 100, sh).state.uplinks).toEqual(s.uplinks);
  });

  it("knows the next moment the decision could change with no message", () => {
    const fresh = initialState(sh, 0);
    expect(nextDeadline(fresh, sh, 0)).toBe(3_000);
    const heard = step(fresh, { kind: "heartbeat", uplink: "isp1" }, 1_000, sh).state;
    expect(nextDeadline(heard, sh, 1_000)).toBe(3_000);
    expect(nextDeadline(heard, sh, 3_500)).toBe(4_000);
    expect(nextDeadline(heard, sh, 4_000)).toBeNull();
    // On the backup with the primary back: the hold-down's end, or the dwell's if later.
    const back = state({
      uplinks: { isp1: up(5_500, { upSince: 5_000 }), isp2: up(5_500) },
      active: "isp2",
      generation: 2,
      lastSwitchAt: 0,
    });
    expect(nextDeadline(back, sh, 5_500)).toBe(6_000);
    expect(
      nextDeadline({ ...back, lastSwitchAt: 1_000 }, { ...sh, policy: { ...sh.policy, minDwellMs: 7_000 } }, 5_500),
    ).toBe(8_000);
    // A down uplink has no deadline of its own; an active uplink the config dropped, no return.
    expect(
      nextDeadline(
        { ...back, uplinks: { ...back.uplinks, isp2: { ...up(5_400), state: "down", upSince: null } } },
        sh,
        5_500,
      ),
    ).toBe(8_500);
    expect(nextDeadline({ ...back, active: "gone" }, sh, 5_500)).toBe(8_500);
    // Both heard: the first grace no longer counts.
    const both = step(heard, { kind: "heartbeat", uplink: "isp2" }, 1_000, sh).state;
    expect(nextDeadline(both, sh, 1_000)).toBe(4_000);
    // Only an uplink that is up can be returned to: a down primary sets no time, the backup's silence does.
    const long = { ...sh, policy: { ...sh.policy, downAfterMs: 600_000, minDwellMs: 2_000 } };
    const primaryDown = state({
      uplinks: { isp1: { lastHeardAt: 1_000, state: "down", stateSince: 2_000, upSince: null }, isp2: up(5_500) },
      active: "isp2",
      generation: 2,
      lastSwitchAt: 5_000,
    });
    expect(nextDeadline(primaryDown, long, 5_500)).toBe(605_500);
    // After a restart, a return waits for the end of the grace (or a heartbeat), whichever the dwell and hold-down allow.
    const restarted = restoredState(
      state({ uplinks: { isp1: up(4_900), isp2: up(4_900) }, active: "isp2", generation: 2, lastSwitchAt: 4_000 }),
      sh,
      5_000,
    );
    expect(nextDeadline(restarted, { ...sh, policy: { ...sh.policy, minDwellMs: 2_000 } }, 5_000)).toBe(8_000);
    expect(
      nextDeadline(
        { ...back, override: { uplink: "isp2", until: 6_500, reason: "x" } },
        { ...sh, policy: { ...sh.policy, failbackAfterMs: 0 } },
        5_500,
      ),
    ).toBe(6_500);
    // On the primary, nothing better to return to: only the silences.
    expect(nextDeadline({ ...back, active: "isp1" }, sh, 5_500)).toBe(8_500);
  });

  it("starts with every uplink unknown and nothing chosen", () => {
    expect(initialState(sh, 5)).toEqual({
      observedSince: 5,
      uplinks: {
        isp1: { lastHeardAt: null, state: "unknown", stateSince: 5, upSince: null },
        isp2: { lastHeardAt: null, state: "unknown", stateSince: 5, upSince: null },
      },
      active: null,
      generation: 0,
      lastSwitchAt: null,
      override: null,
    });
  });

  it("chooses first the primary, waiting out its first grace for it, and says so exactly", () => {
    const s0 = initialState(sh, 0);
    const r = step(s0, { kind: "heartbeat", uplink: "isp1" }, 100, sh);
    expect(r.effects).toEqual([
      { kind: "uplink-state", uplink: "isp1", from: "unknown", to: "up" },
      { kind: "switch", from: null, to: "isp1", generation: 1, reason: "initial" },
    ]);
    expect(r.state.uplinks.isp2).toEqual({ lastHeardAt: null, state: "unknown", stateSince: 0, upSince: null });
    // Only the backup heard: it waits until the primary's grace is over (exactly downAfterMs).
    const backup = step(s0, { kind: "heartbeat", uplink: "isp2" }, 100, sh);
    expect(backup.effects).toEqual([{ kind: "uplink-state", uplink: "isp2", from: "unknown", to: "up" }]);
    const later = step(backup.state, { kind: "heartbeat", uplink: "isp2" }, 2_999, sh);
    expect(later.effects).toEqual([]);
    const chosen = step(later.state, { kind: "tick" }, 3_000, sh);
    expect(chosen.effects).toEqual([
      { kind: "uplink-state", uplink: "isp1", from: "unknown", to: "down" },
      { kind: "switch", from: null, to: "isp2", generation: 1, reason: "initial" },
    ]);
    expect(chosen.state.uplinks).toEqual({
      isp1: { lastHeardAt: null, state: "down", stateSince: 3_000, upSince: null },
      isp2: { lastHeardAt: 2_999, state: "up", stateSince: 100, upSince: 100, degraded: false, pathAt: 100 },
    });
  });

  it("ranks uplinks by their priority, not by the order the config lists them", () => {
    const listed = {
      ...sh,
      uplinks: [
        { id: "b", priority: 2 },
        { id: "a", priority: 1 },
      ],
    };
    let s = initialState(listed, 0);
    s = step(s, { kind: "heartbeat", uplink: "b" }, 100, listed).state;
    const r = step(s, { kind: "heartbeat", uplink: "a" }, 200, listed);
    expect(r.state.active).toBe("a");
    // Equal priority: no return from one to the other.
    const equal = {
      ...sh,
      uplinks: [
        { id: "a", priority: 1 },
        { id: "b", priority: 1 },
      ],
    };
    const onB = state({
      uplinks: { a: up(9_000, { upSince: 0 }), b: up(9_000) },
      active: "b",
      generation: 2,
      lastSwitchAt: 0,
    });
    expect(step(onB, { kind: "tick" }, 9_500, equal).effects).toEqual([]);
  });

  it("when every uplink that is up is degraded, chooses the best of those", () => {
    const bad = { lossRatio: 0.9, rttMs: 30, samples: 60 };
    const r = step(initialState(sh, 0), { kind: "heartbeat", uplink: "isp1", path: bad }, 100, sh);
    expect(r.effects.filter((e) => e.kind === "switch")).toEqual([
      { kind: "switch", from: null, to: "isp1", generation: 1, reason: "initial" },
    ]);
  });

  it("an override switches to its uplink at once, counted as a generation", () => {
    const s = state({
      uplinks: { isp1: up(1_000), isp2: up(1_000) },
      active: "isp1",
      generation: 4,
      lastSwitchAt: 900,
    });
    const r = step(s, { kind: "override-set", override: { uplink: "isp2", until: 9_000, reason: "x" } }, 1_000, sh);
    expect(r.effects).toEqual([{ kind: "switch", from: "isp1", to: "isp2", generation: 5, reason: "override" }]);
    expect(r.state).toMatchObject({ active: "isp2", generation: 5, lastSwitchAt: 1_000, override: { uplink: "isp2" } });
  });

  it("an active uplink the config no longer has is left for the best one", () => {
    const s = state({ uplinks: { isp1: up(1_000), isp2: up(1_000) }, active: "gone", generation: 4 });
    expect(step(s, { kind: "tick" }, 1_000, sh).effects).toEqual([
      { kind: "switch", from: "gone", to: "isp1", generation: 5, reason: "failover" },
    ]);
  });

  it("takes over only with a backup heard within downAfterMs − heartbeatMs, and returns only to one heard within two heartbeats", () => {
    // isp1 is judged down at 4 000; isp2 last heard at 2 000 or 2 001.
    const dying = (isp2At: number) =>
      state({ uplinks: { isp1: up(1_000), isp2: up(isp2At) }, active: "isp1", generation: 1, lastSwitchAt: 0 });
    expect(step(dying(2_000), { kind: "tick" }, 4_000, sh).effects.filter((e) => e.kind === "switch")).toEqual([]);
    expect(step(dying(2_001), { kind: "tick" }, 4_000, sh).effects.filter((e) => e.kind === "switch")).toEqual([
      { kind: "switch", from: "isp1", to: "isp2", generation: 2, reason: "failover" },
    ]);
    // On the backup; the primary up since 0, heard 1 999 or 2 000 ago.
    const onBackup = (isp1At: number) =>
      state({ uplinks: { isp1: up(isp1At), isp2: up(10_000) }, active: "isp2", generation: 2, lastSwitchAt: 0 });
    expect(step(onBackup(8_001), { kind: "tick" }, 10_000, sh).effects.filter((e) => e.kind === "switch")).toEqual([
      { kind: "switch", from: "isp2", to: "isp1", generation: 3, reason: "failback" },
    ]);
    expect(step(onBackup(8_000), { kind: "tick" }, 10_000, sh).effects.filter((e) => e.kind === "switch")).toEqual([]);
  });

  it("returns exactly when the dwell is over, not a moment before", () => {
    const dwell = { ...sh, policy: { ...sh.policy, minDwellMs: 5_000 } };
    const s = state({
      uplinks: { isp1: up(9_900), isp2: up(9_900) },
      active: "isp2",
      generation: 2,
      lastSwitchAt: 5_000,
    });
    expect(step(s, { kind: "tick" }, 9_999, dwell).effects).toEqual([]);
    expect(step(s, { kind: "tick" }, 10_000, dwell).effects).toEqual([
      { kind: "switch", from: "isp2", to: "isp1", generation: 3, reason: "failback" },
    ]);
  });

  it("leaves a degraded primary for a healthy backup after the dwell, and a degraded backup for the primary only once it has held", () => {
    // To a lower-priority backup at once, even one up for less than the hold-down.
    const s = state({
      uplinks: { isp1: up(9_900, { degraded: true, pathAt: 9_000 }), isp2: up(9_900, { upSince: 9_500 }) },
      active: "isp1",
      generation: 1,
      lastSwitchAt: 0,
    });
    expect(step(s, { kind: "tick" }, 10_000, sh).effects).toEqual([
      { kind: "switch", from: "isp1", to: "isp2", generation: 2, reason: "degraded" },
    ]);
    // To one of equal priority only once it has held, like a return.
    const equal = {
      ...sh,
      uplinks: [
        { id: "isp1", priority: 1 },
        { id: "isp2", priority: 1 },
      ],
    };
    expect(step(s, { kind: "tick" }, 10_000, equal).effects).toEqual([]);
    const onBackup = (upSince: number) =>
      state({
        uplinks: { isp1: up(9_900, { upSince }), isp2: up(9_900, { degraded: true, pathAt: 9_000 }) },
        active: "isp2",
        generation: 2,
        lastSwitchAt: 0,
      });
    expect(step(onBackup(9_001), { kind: "tick" }, 10_000, sh).effects).toEqual([]);
    expect(step(onBackup(9_000), { kind: "tick" }, 10_000, sh).effects).toEqual([
      { kind: "switch", from: "isp2", to: "isp1", generation: 3, reason: "degraded" },
    ]);
  });

  it("judges a path on 20 handshakes or more, and stays degraded until under half the loss", () => {
    const p = sh.policy;
    expect(degradedBy({ lossRatio: 0.5, rttMs: 30, samples: 20 }, false, p)).toBe(true);
    expect(degradedBy({ lossRatio: 0.5, rttMs: 30, samples: 19 }, false, p)).toBe(false);
    expect(degradedBy({ lossRatio: 0.1, rttMs: 30, samples: 60 }, true, p)).toBe(true);
    expect(degradedBy({ lossRatio: 0.099, rttMs: 30, samples: 60 }, true, p)).toBe(false);
  });
});
