import { describe, expect, it } from "vitest";
import {
  planTunnels,
  restartFor,
  tunnelDeadline,
  type ServerView,
  type TunnelPlan,
} from "../../worker/src/engine/tunnels.ts";

const plan = (over: Partial<TunnelPlan> = {}): TunnelPlan => ({
  generation: 4,
  switchedAt: 1_000,
  restarter: null,
  requestedAt: null,
  doneAt: null,
  ...over,
});
const server = (id: string, over: Partial<ServerView> = {}): ServerView => ({
  id,
  role: "server",
  tunnelRestarter: true,
  live: true,
  appliedGeneration: 4,
  tunnelGeneration: 3,
  tunnelFailed: false,
  ...over,
});
const WAIT = 30_000;

describe("tunnel planner", () => {
  it("has nothing to do without a plan, once done, or unless restarts are coordinated", () => {
    expect(planTunnels(null, "cluster", [server("a")], WAIT, 2_000)).toEqual({ plan: null, effects: [] });
    const done = plan({ doneAt: 1_500 });
    expect(planTunnels(done, "cluster", [server("a")], WAIT, 2_000)).toEqual({ plan: done, effects: [] });
    for (const mode of ["per-server", "none"] as const)
      expect(planTunnels(plan(), mode, [server("a")], WAIT, 2_000)).toEqual({ plan: plan(), effects: [] });
  });

  it("is done when a restarter server reports the generation's restart (not a probe, not a server that may not restart)", () => {
    const servers = [
      server("probe", { role: "probe", tunnelGeneration: 4 }),
      server("plain", { tunnelRestarter: false, tunnelGeneration: 9 }),
      server("b", { tunnelGeneration: 4 }),
    ];
    expect(planTunnels(plan({ restarter: "b", requestedAt: 1_200 }), "cluster", servers, WAIT, 2_000)).toEqual({
      plan: plan({ restarter: "b", requestedAt: 1_200, doneAt: 2_000 }),
      effects: [{ kind: "tunnel-restarted", agent: "b", generation: 4 }],
    });
    expect(planTunnels(plan(), "cluster", servers.slice(0, 2), WAIT, 2_000).effects).not.toContainEqual(
      expect.objectContaining({ kind: "tunnel-restarted" }),
    );
  });

  it("waits for every live server to apply the switch, but no longer than maxWaitMs", () => {
    const slow = [server("a"), server("b", { appliedGeneration: 3 })];
    expect(planTunnels(plan(), "cluster", slow, WAIT, 1_000 + WAIT - 1)).toEqual({ plan: plan(), effects: [] });
    expect(planTunnels(plan(), "cluster", slow, WAIT, 1_000 + WAIT)).toEqual({
      plan: plan({ restarter: "a", requestedAt: 1_000 + WAIT }),
      effects: [{ kind: "tunnel-restart-requested", agent: "a", generation: 4, allApplied: false }],
    });
    // A server that is not live, or never applied anything, is not waited for if not live.
    const gone = [server("a"), server("b", { live: false, appliedGeneration: null })];
    expect(planTunnels(plan(), "cluster", gone, WAIT, 1_001)).toEqual({
      plan: plan({ restarter: "a", requestedAt: 1_001 }),
      effects: [{ kind: "tunnel-restart-requested", agent: "a", generation: 4, allApplied: true }],
    });
  });

  it("elects a live restarter that applied the switch first, then by id, and keeps it while it lives", () => {
    const servers = [
      server("c"),
      server("a", { appliedGeneration: 3 }),
      server("b"),
      server("d", { live: false }),
      server("e", { tunnelRestarter: false }),
      server("0", { role: "probe" }),
    ];
    const elected = planTunnels(plan(), "cluster", servers, WAIT, 1_000 + WAIT);
    expect(elected).toEqual({
      plan: plan({ restarter: "b", requestedAt: 1_000 + WAIT }),
      effects: [{ kind: "tunnel-restart-requested", agent: "b", generation: 4, allApplied: false }],
    });
    expect(planTunnels(elected.plan, "cluster", servers, WAIT, 1_000 + WAIT + 5)).toEqual({
      plan: elected.plan,
      effects: [],
    });
    // It dies: the next one takes over.
    const died = servers.map((s) => (s.id === "b" ? { ...s, live: false } : s));
    expect(planTunnels(elected.plan, "cluster", died, WAIT, 1_000 + WAIT + 10)).toEqual({
      plan: plan({ restarter: "c", requestedAt: 1_000 + WAIT + 10 }),
      effects: [{ kind: "tunnel-restart-requested", agent: "c", generation: 4, allApplied: false }],
    });
  });

  it("says once that no restarter is live, and again only after one it had chosen is gone", () => {
    const none = [server("a", { tunnelRestarter: false }), server("b", { live: false })];
    const first = planTunnels(plan(), "cluster", none, WAIT, 2_000);
    expect(first).toEqual({
      plan: plan({ requestedAt: 2_000 }),
      effects: [{ kind: "tunnel-no-restarter", generation: 4, offline: ["b"] }],
    });
    expect(planTunnels(first.plan, "cluster", none, WAIT, 3_000)).toEqual({ plan: first.plan, effects: [] });
    expect(planTunnels(plan({ restarter: "b", requestedAt: 1_500 }), "cluster", none, WAIT, 3_000)).toEqual({
      plan: plan({ requestedAt: 3_000 }),
      effects: [{ kind: "tunnel-no-restarter", generation: 4, offline: ["b"] }],
    });
  });

  it("tells a server to restart: every server per-server, only the elected one in cluster mode, never a probe", () => {
    const p = plan({ restarter: "a", requestedAt: 1_200 });
    expect(restartFor(p, "per-server", server("b"), 4)).toBe(true);
    expect(restartFor(p, "cluster", server("a"), 4)).toBe(true);
    expect(restartFor(p, "cluster", server("b"), 4)).toBe(false);
    expect(restartFor(plan({ restarter: "a" }), "cluster", server("a"), 4)).toBe(false);
    expect(restartFor(p, "cluster", server("a"), 5)).toBe(false);
    expect(restartFor(p, "per-server", server("a", { role: "probe" }), 4)).toBe(false);
    expect(restartFor(p, "none", server("a"), 4)).toBe(false);
    expect(restartFor(null, "per-server", server("a"), 4)).toBe(false);
  });

  it("needs a look with no message only at the end of the bounded wait", () => {
    expect(tunnelDeadline(plan(), "cluster", WAIT, 2_000)).toBe(1_000 + WAIT);
    expect(tunnelDeadline(plan(), "cluster", WAIT, 1_000 + WAIT - 1)).toBe(1_000 + WAIT);
    expect(tunnelDeadline(plan(), "cluster", WAIT, 1_000 + WAIT)).toBeNull();
    expect(tunnelDeadline(plan({ requestedAt: 1_500 }), "cluster", WAIT, 2_000)).toBeNull();
    expect(tunnelDeadline(plan({ doneAt: 1_500 }), "cluster", WAIT, 2_000)).toBeNull();
    expect(tunnelDeadline(plan(), "per-server", WAIT, 2_000)).toBeNull();
    expect(tunnelDeadline(null, "cluster", WAIT, 2_000)).toBeNull();
  });
});
