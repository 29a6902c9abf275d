// Who restarts the tunnels after a switch, and when: pure, like the decision engine.
import type { AgentRole, TunnelRestartMode } from "#shared";

export interface ServerView {
  id: string;
  role: AgentRole;
  tunnelRestarter: boolean;
  live: boolean;
  appliedGeneration: number | null;
  tunnelGeneration: number | null;
  /** Told to restart this plan's tunnels, it reports an error (a Swarm worker cannot, say). */
  tunnelFailed: boolean;
}

/** The restart owed for one switch generation (none after the first choice of an uplink). */
export interface TunnelPlan {
  generation: number;
  switchedAt: number;
  restarter: string | null;
  requestedAt: number | null;
  doneAt: number | null;
  /** Restarters that failed this plan: passed over while a live one has not (absent in plans stored before). */
  failed?: string[];
}

export type TunnelEffect =
  | { kind: "tunnel-restart-requested"; agent: string; generation: number; allApplied: boolean }
  | { kind: "tunnel-restarted"; agent: string; generation: number }
  /** `offline`: servers enrolled as restarters but not live (not a missing enrolment). */
  | { kind: "tunnel-no-restarter"; generation: number; offline: string[] };

const applied = (a: ServerView, g: number) => (a.appliedGeneration ?? -1) >= g;

export function planTunnels(
  plan: TunnelPlan | null,
  mode: TunnelRestartMode,
  agents: readonly ServerView[],
  maxWaitMs: number,
  now: number,
): { plan: TunnelPlan | null; effects: TunnelEffect[] } {
  if (!plan || plan.doneAt !== null || mode !== "cluster") return { plan, effects: [] };
  const g = plan.generation;
  const servers = agents.filter((a) => a.role === "server");
  const done = servers.find((a) => a.tunnelRestarter && (a.tunnelGeneration ?? -1) >= g);
  if (done)
    return { plan: { ...plan, doneAt: now }, effects: [{ kind: "tunnel-restarted", agent: done.id, generation: g }] };

  const allApplied = servers.filter((a) => a.live).every((a) => applied(a, g));
  if (!allApplied && now < plan.switchedAt + maxWaitMs) return { plan, effects: [] };

  const current = servers.find((a) => a.id === plan.restarter);
  const failed = new Set(plan.failed ?? []);
  if (current?.tunnelFailed) failed.add(current.id);
  if (current?.live && !failed.has(current.id)) return { plan, effects: [] };
  // Elect deterministically: live restarters that have not failed this plan, that applied the switch first, then by id.
  const candidates = servers
    .filter((a) => a.tunnelRestarter && a.live)
    .sort(
      (a, b) =>
        Number(failed.has(a.id)) - Number(failed.has(b.id)) ||
        Number(applied(b, g)) - Number(applied(a, g)) ||
        a.id.localeCompare(b.id),
    );
  const elected = candidates[0];
  if (!elected) {
    if (plan.restarter === null && plan.requestedAt !== null) return { plan, effects: [] };
    return {
      plan: { ...plan, restarter: null, requestedAt: now },
      effects: [
        {
          kind: "tunnel-no-restarter",
          generation: g,
          offline: servers.filter((a) => a.tunnelRestarter).map((a) => a.id),
        },
      ],
    };
  }
  // Nobody better than the one that failed (every live restarter has): it keeps retrying, with nothing new to tell.
  if (elected.id === plan.restarter || (failed.has(elected.id) && current?.live))
    return { plan: failed.size === (plan.failed?.length ?? 0) ? plan : { ...plan, failed: [...failed] }, effects: [] };
  return {
    plan: { ...plan, restarter: elected.id, requestedAt: now, ...(failed.size ? { failed: [...failed] } : {}) },
    effects: [{ kind: "tunnel-restart-requested", agent: elected.id, generation: g, allApplied }],
  };
}

/** Whether this agent's directive tells it to restart its tunnels. */
export function restartFor(
  plan: TunnelPlan | null,
  mode: TunnelRestartMode,
  agent: Pick<ServerView, "id" | "role">,
  generation: number,
): boolean {
  if (agent.role !== "server" || mode === "none" || !plan || plan.generation !== generation) return false;
  if (mode === "per-server") return true;
  return plan.restarter === agent.id && plan.requestedAt !== null;
}

/** When the plan next needs a look with no message arriving: the end of the bounded wait. */
export function tunnelDeadline(
  plan: TunnelPlan | null,
  mode: TunnelRestartMode,
  maxWaitMs: number,
  now: number,
): number | null {
  if (!plan || mode !== "cluster" || plan.doneAt !== null || plan.requestedAt !== null) return null;
  const t = plan.switchedAt + maxWaitMs;
  return t > now ? t : null;
}
