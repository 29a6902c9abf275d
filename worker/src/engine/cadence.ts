// How often each uplink is heard, and so how long a silence on it means down. A metered uplink
// standing by is watched slowly: its probe (or, with no probe behind it, one server) heartbeats at
// policy.meteredHeartbeatMs and the other servers check their path through it at
// policy.meteredCheckMs. Every silence window of the decision scales with the watcher's interval,
// so a slow standby is neither called down between its heartbeats nor kept up when it is silent.
// Pure.
import type { Policy, Uplink } from "#shared";

export interface Cadence {
  heartbeatMs: number;
  downAfterMs: number;
}

type Shape = { uplinks: readonly Uplink[]; policy: Policy };

/** What the cadence needs of an agent. */
export interface AgentRole {
  id: string;
  role: "probe" | "server";
  uplink: string | null;
}

const uplinkOf = (shape: Shape, id: string): Uplink | undefined => shape.uplinks.find((u) => u.id === id);

export const isMetered = (shape: Shape, id: string): boolean => !!uplinkOf(shape, id)?.metered;

/** The standby's watcher's interval and the other servers': never faster than the site's own. */
const watchMs = (p: Policy) => Math.max(p.heartbeatMs, p.meteredHeartbeatMs);
const checkMs = (p: Policy) => Math.max(watchMs(p), p.meteredCheckMs);

/** A heartbeat every `ms`, with the policy's ratio of downAfterMs to heartbeatMs (the beats one may miss). */
function scaled(policy: Policy, ms: number): Cadence {
  return { heartbeatMs: ms, downAfterMs: Math.round((policy.downAfterMs * ms) / policy.heartbeatMs) };
}

/** How uplink `id` is heard by its closest watcher while `active` is the active uplink. */
export function cadenceOf(shape: Shape, id: string, active: string | null): Cadence {
  const { policy } = shape;
  return isMetered(shape, id) && id !== active
    ? scaled(policy, watchMs(policy))
    : { heartbeatMs: policy.heartbeatMs, downAfterMs: policy.downAfterMs };
}

/**
 * Until when uplink `id`, last heard at `lastHeardAt`, counts as heard recently: its cadence's
 * downAfterMs later. A metered uplink made active since it was last heard was watched slowly
 * until then, and its agents were told at the switch to speed up: its slow window holds, but no
 * longer than a full-rate downAfterMs after the switch.
 */
export function heardUntil(
  shape: Shape,
  id: string,
  lastHeardAt: number,
  s: { active: string | null; lastSwitchAt: number | null },
): number {
  const { policy } = shape;
  const switchedInto = isMetered(shape, id) && id === s.active && s.lastSwitchAt !== null;
  if (!switchedInto || lastHeardAt >= s.lastSwitchAt!) return lastHeardAt + cadenceOf(shape, id, s.active).downAfterMs;
  const slow = lastHeardAt + scaled(policy, watchMs(policy)).downAfterMs;
  return Math.min(slow, s.lastSwitchAt! + policy.downAfterMs);
}

/** The hold-down before a return from `active` to a better uplink: shorter from a metered one, if the policy says so. */
export function failbackAfterMs(shape: Shape, active: string | null): number {
  const { failbackAfterMs, meteredFailbackAfterMs } = shape.policy;
  return active !== null && isMetered(shape, active) && meteredFailbackAfterMs !== undefined
    ? Math.min(failbackAfterMs, meteredFailbackAfterMs)
    : failbackAfterMs;
}

/** Whether `agent` is the one that watches metered `uplink` closely while it stands by. */
function watches(agent: AgentRole, uplink: string, agents: readonly AgentRole[]): boolean {
  if (agent.role === "probe") return true;
  if (agents.some((a) => a.role === "probe" && a.uplink === uplink)) return false;
  // No probe behind it: one server (the first by id) stands in, so the uplink is still heard.
  const first = agents
    .filter((a) => a.role === "server")
    .map((a) => a.id)
    .sort()[0];
  return agent.id === first;
}

/** The interval `agent` heartbeats through each uplink at, with `active` the active uplink. */
export function agentHeartbeats(
  shape: Shape,
  active: string | null,
  agent: AgentRole,
  agents: readonly AgentRole[],
): Record<string, number> {
  const { policy } = shape;
  const out: Record<string, number> = {};
  for (const u of shape.uplinks) {
    if (agent.uplink !== null && agent.uplink !== u.id) continue;
    out[u.id] =
      !u.metered || u.id === active
        ? policy.heartbeatMs
        : watches(agent, u.id, agents)
          ? watchMs(policy)
          : checkMs(policy);
  }
  return out;
}

/**
 * How long `agent` may go unheard through `uplink` before its path there counts as broken: two
 * downAfterMs at the slowest interval it may be told for that uplink.
 */
export function agentSilenceMs(shape: Shape, agent: Pick<AgentRole, "role">, uplink: string): number {
  const { policy } = shape;
  if (!isMetered(shape, uplink)) return 2 * policy.downAfterMs;
  return 2 * scaled(policy, agent.role === "probe" ? watchMs(policy) : checkMs(policy)).downAfterMs;
}
