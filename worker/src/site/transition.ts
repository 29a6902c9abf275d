// One step of a site: the decision engine, the tunnel planner, the agents gone stale and the
// servers cut off from an uplink, folded into what to record and whether to tell the agents.
// Pure: the caller writes and sends what it returns.
import type { SiteConfig } from "#shared";
import { step, type DecisionEvent, type DecisionState } from "../engine/decision.ts";
import { planTunnels, type TunnelPlan } from "../engine/tunnels.ts";
import { agentSilenceMs } from "../engine/cadence.ts";
import { agentStaleAfterMs, cutOffUplinks, isLive } from "../status.ts";
import type { AgentRow, AgentRuntime } from "../store.ts";
import { restartingTunnels } from "./directives.ts";
import type { NewEvent } from "./events.ts";
import { describeEffect, describePaths, describeReach, describeStale, describeTunnel } from "./narrate.ts";

export interface TransitionInput {
  config: SiteConfig;
  decision: DecisionState;
  plan: TunnelPlan | null;
  agents: readonly AgentRow[];
  /** When the object woke: until a stale threshold later, last-seen times are only checkpoints. */
  wokeAt: number;
  event: DecisionEvent;
  /** Events the caller records with this step (an override's, a heartbeat's). */
  extra: readonly NewEvent[];
  now: number;
}

export interface Transition {
  decision: DecisionState;
  plan: TunnelPlan | null;
  saveDecision: boolean;
  savePlan: boolean;
  /** New runtimes of the agents that went stale or whose set of cut-off uplinks changed. */
  runtimes: Map<string, AgentRuntime>;
  events: NewEvent[];
  /** What the agents are told may have changed: push it to the connected ones. */
  push: boolean;
}

export function transition(i: TransitionInput): Transition {
  const { config, now } = i;
  const { state, effects } = step(i.decision, i.event, now, config);
  const switched = effects.find((e) => e.kind === "switch");
  let plan = i.plan;
  if (switched)
    plan =
      switched.reason === "initial"
        ? null
        : { generation: switched.generation, switchedAt: now, restarter: null, requestedAt: null, doneAt: null };
  const servers = i.agents.map((row) => ({
    id: row.id,
    role: row.role,
    tunnelRestarter: row.tunnelRestarter,
    live: isLive(row, config, now),
    appliedGeneration: row.runtime.appliedGeneration,
    tunnelGeneration: row.runtime.tunnelGeneration,
    tunnelFailed: restartingTunnels(i, row) !== null && row.runtime.lastError !== null,
  }));
  const tunnels = planTunnels(plan, config.tunnels.restart, servers, config.tunnels.maxWaitMs, now);
  // Just after a wake, last-seen times are checkpoints: judging them would call live agents stale.
  const stale = i.agents.flatMap((row) => {
    const { stale, lastSeenAt } = row.runtime;
    const settled = now - i.wokeAt >= agentStaleAfterMs(config, row);
    return settled && !stale && lastSeenAt !== null && !isLive(row, config, now) ? [{ row, lastSeenAt }] : [];
  });
  const paths =
    now - i.wokeAt >= 2 * config.policy.downAfterMs
      ? i.agents.flatMap((row) => {
          const cutOff = cutOffUplinks(row, state, config, now, i.wokeAt);
          return cutOff.join() === (row.runtime.cutOff ?? []).join() ? [] : [{ row, cutOff }];
        })
      : [];
  const runtimes = new Map<string, AgentRuntime>();
  for (const { row } of stale) runtimes.set(row.id, { ...row.runtime, stale: true });
  for (const { row, cutOff } of paths) runtimes.set(row.id, { ...(runtimes.get(row.id) ?? row.runtime), cutOff });
  const events = [
    ...i.extra,
    ...effects.map((e) => describeEffect(e, now)),
    ...describeReach(i.decision, state, now),
    ...tunnels.effects.map((e) => describeTunnel(e, now)),
    ...stale.map(({ row, lastSeenAt }) => describeStale(row, lastSeenAt, now)),
    ...paths.flatMap((p) => describePaths(p.row, p.cutOff, state, (u) => agentSilenceMs(config, p.row, u), now)),
  ];
  const planChanged = tunnels.plan !== i.plan;
  return {
    decision: state,
    plan: tunnels.plan,
    saveDecision: effects.length > 0 || i.event.kind === "override-set",
    savePlan: planChanged,
    runtimes,
    events,
    push: !!switched || planChanged,
  };
}
