// The live picture of a site, built from the coordinator's memory: pure, shared by the status API,
// the metrics and (later) the status page.
import type { DataUse, NotifyStatus, SiteConfig, SiteStatus, SiteSummary } from "#shared";
import { agentSilenceMs } from "./engine/cadence.ts";
import { runtimeOf, siteMode, type DecisionState } from "./engine/decision.ts";
import type { TunnelPlan } from "./engine/tunnels.ts";
import { misrouteUplink } from "./attribution.ts";
import { ipv6State } from "./ipv6-heard.ts";
import type { AgentRow, UplinkObservation } from "./store.ts";

export interface StatusInput {
  site: string;
  config: SiteConfig;
  decision: DecisionState;
  plan: TunnelPlan | null;
  agents: readonly AgentRow[];
  observations: ReadonlyMap<string, UplinkObservation>;
  notify: NotifyStatus;
  /** Per metered uplink. */
  dataUse: ReadonlyMap<string, DataUse>;
  now: number;
}

/**
 * An agent is stale when it has not been heard through any uplink for twice the down threshold,
 * at the slowest interval it may be told (a probe behind a metered standby heartbeats slowly).
 */
export function agentStaleAfterMs(config: SiteConfig, a: Pick<AgentRow, "role" | "uplink">): number {
  const uplinks = a.uplink === null ? config.uplinks.map((u) => u.id) : [a.uplink];
  return Math.min(...uplinks.map((u) => agentSilenceMs(config, a, u)));
}

export function isLive(a: AgentRow, config: SiteConfig, now: number): boolean {
  return a.runtime.lastSeenAt !== null && now - a.runtime.lastSeenAt < agentStaleAfterMs(config, a);
}

/**
 * Uplinks that are up for the site but that this live server has not been heard through for the
 * stale threshold: its own path through them is broken (a LAN port, a cable, its policy routing),
 * though the uplink works for the others.
 */
export function cutOffUplinks(
  a: AgentRow,
  decision: DecisionState,
  config: SiteConfig,
  now: number,
  wokeAt = Number.NEGATIVE_INFINITY,
): string[] {
  if (a.role !== "server" || !isLive(a, config, now)) return [];
  return config.uplinks
    .filter((u) => {
      const rt = runtimeOf(decision.uplinks, u.id);
      const staleMs = agentSilenceMs(config, a, u.id);
      // Just after a wake, last-seen times are checkpoints: the verdict stands until they are real.
      if (now - wokeAt < staleMs) return (a.runtime.cutOff ?? []).includes(u.id);
      // Enrolled and up for long enough that the server would have been heard through it.
      const since = Math.max(rt?.stateSince ?? now, a.createdAt);
      return rt?.state === "up" && now - since >= staleMs && !heardWithin(a, u.id, now, staleMs);
    })
    .map((u) => u.id);
}

/** Whether the agent was heard through this uplink within the last `ms`. */
export function heardWithin(a: AgentRow, uplink: string, now: number, ms: number): boolean {
  return Object.hasOwn(a.runtime.uplinksSeen, uplink) && now - a.runtime.uplinksSeen[uplink]! < ms;
}

export function buildStatus(i: StatusInput): SiteStatus {
  const { decision: d, config } = i;
  const activeSince = d.lastSwitchAt;
  return {
    site: i.site,
    now: i.now,
    activeUplink: d.active,
    generation: d.generation,
    mode: siteMode(d),
    since: activeSince,
    override: d.override,
    directive: d.active === null ? null : { generation: d.generation, activeUplink: d.active, restartTunnels: false },
    uplinks: [...config.uplinks]
      .sort((a, b) => a.priority - b.priority)
      .map((u) => {
        const rt = d.uplinks[u.id]!;
        const obs = i.observations.get(u.id);
        return {
          id: u.id,
          name: u.name ?? null,
          priority: u.priority,
          state: rt.state,
          since: rt.stateSince,
          lastHeartbeatAt: rt.lastHeardAt,
          observedIp: obs?.ip ?? null,
          observedAsn: obs?.asn ?? null,
          rttMs: obs?.rttMs ?? null,
          gatewayRttMs: obs?.gatewayRttMs ?? null,
          lossRatio: obs?.path?.lossRatio ?? null,
          pathRttMs: obs?.path?.rttMs ?? null,
          degraded: !!rt.degraded,
          ...(i.dataUse.has(u.id) ? { dataUse: i.dataUse.get(u.id)! } : {}),
          ipv6: ipv6State(obs?.ipv6HeardAt ?? null, agentSilenceMs(config, { role: "server" }, u.id), i.now),
          lastIpv6HeartbeatAt: obs?.ipv6HeardAt ?? null,
        };
      }),
    agents: i.agents.map((a) => {
      const heardRecently = (seen: Record<string, number>) =>
        Object.entries(seen)
          .filter(([u, at]) => i.now - at < agentSilenceMs(config, a, u))
          .map(([u]) => u)
          .sort();
      return {
        id: a.id,
        role: a.role,
        uplink: a.uplink,
        tunnelRestarter: a.tunnelRestarter,
        lastSeenAt: a.runtime.lastSeenAt,
        stale: !isLive(a, config, i.now),
        uplinksSeen: heardRecently(a.runtime.uplinksSeen),
        ipv6Uplinks: heardRecently(a.runtime.uplinksSeen6 ?? {}),
        misroutedUplinks: [...new Set(Object.keys(a.runtime.misrouted).map(misrouteUplink))].sort(),
        appliedGeneration: a.runtime.appliedGeneration,
        tunnelGeneration: a.runtime.tunnelGeneration,
        routedUplink: a.runtime.routedUplink,
        lastError: a.runtime.lastError,
        version: a.runtime.version,
        clockOffsetMs: a.runtime.clockOffsetMs ?? null,
      };
    }),
    tunnels: {
      mode: config.tunnels.restart,
      generation: i.plan?.generation ?? 0,
      restarter: i.plan?.restarter ?? null,
      requestedAt: i.plan?.requestedAt ?? null,
      done: i.plan === null || i.plan.doneAt !== null,
    },
    notify: i.notify,
  };
}

/** The site's line in the list of sites. */
export function summaryOf(s: SiteStatus): SiteSummary {
  return {
    site: s.site,
    activeUplink: s.activeUplink,
    mode: s.mode,
    since: s.since,
    uplinks: s.uplinks.map((u) => ({ id: u.id, name: u.name, state: u.state })),
    agents: s.agents.length,
    staleAgents: s.agents.filter((a) => a.stale).length,
  };
}
