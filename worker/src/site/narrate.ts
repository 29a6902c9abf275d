// What the log says of each transition: pure, one function per source of events.
import {
  PATH_REPORT_STALE_MS,
  normalChoice,
  runtimeOf,
  siteMode,
  type SiteShape,
  type DecisionState,
  type Effect,
  type Override,
} from "../engine/decision.ts";
import { failbackAfterMs } from "../engine/cadence.ts";
import type { TunnelEffect } from "../engine/tunnels.ts";
import { heardWithin } from "../status.ts";
import type { AgentRow } from "../store.ts";
import type { NewEvent } from "./events.ts";

export function describeEffect(e: Effect, at: number): NewEvent {
  switch (e.kind) {
    case "switch": {
      const message =
        e.reason === "initial"
          ? `active uplink: ${e.to} (generation ${e.generation})`
          : `${e.reason}: ${e.from ?? "none"} → ${e.to} (generation ${e.generation})`;
      return {
        at,
        kind: "switch",
        message,
        data: { from: e.from, to: e.to, generation: e.generation, reason: e.reason },
      };
    }
    case "uplink-state":
      return {
        at,
        kind: "uplink",
        message: `${e.uplink}: ${e.from} → ${e.to}${e.witnesses ? ` (unanswered for ${e.witnesses.join(", ")} while another uplink answers)` : ""}`,
        data: { uplink: e.uplink, from: e.from, to: e.to, ...(e.witnesses ? { witnesses: e.witnesses } : {}) },
      };
    case "override-ended":
      return {
        at,
        kind: "override-ended",
        message: `override of ${e.uplink} ${e.expired ? "expired" : "cleared"}`,
        data: { uplink: e.uplink, expired: e.expired },
      };
    case "uplink-quality": {
      if (!e.path) {
        const message = `${e.uplink}: no longer degraded (no probe has reported its path for ${PATH_REPORT_STALE_MS / 1000} s: judged by its heartbeats alone)`;
        return { at, kind: "uplink-quality", message, data: { uplink: e.uplink, degraded: e.degraded } };
      }
      const { lossRatio, rttMs, samples } = e.path;
      const figures = `${Math.round(lossRatio * 100)} % of ${samples} handshakes to the edge lost${rttMs === null ? "" : `, median ${Math.round(rttMs)} ms`}, by its probe`;
      return {
        at,
        kind: "uplink-quality",
        message: `${e.uplink}: ${e.degraded ? "degraded" : "healthy again"} (${figures})`,
        data: { uplink: e.uplink, degraded: e.degraded, ...e.path },
      };
    }
  }
}

/** An operator pinning an uplink, noting when it is not up. */
export function describeOverride(o: Override, forSeconds: number, decision: DecisionState, at: number): NewEvent {
  const down = runtimeOf(decision.uplinks, o.uplink)?.state !== "up";
  const message = `override: ${o.uplink} pinned for ${forSeconds} s (${o.reason})${down ? ` although ${o.uplink} is not up` : ""}`;
  return { at, kind: "override-set", message, data: { uplink: o.uplink, until: o.until, reason: o.reason } };
}

/** When a site whose override was just cleared is back on the uplink the policy picks. */
export function describeReturn(
  d: DecisionState,
  shape: SiteShape,
  now: number,
): { uplink: string | null; at: number | null; message: string } {
  const { uplink, at } = normalChoice(d, shape, now);
  const on = d.active ?? "no uplink";
  let message: string;
  if (uplink === null) message = `no uplink is up: the site stays on ${on} until one is`;
  else if (uplink === d.active)
    message =
      d.lastSwitchAt === now
        ? `back on ${uplink}, the normal choice, at once`
        : `already on ${uplink}, the normal choice`;
  else if (at !== null && at > now)
    message = `stays on ${on} until ${uplink} has been up for the failback hold-down (${failbackAfterMs(shape, d.active) / 1000} s): back on ${uplink} at ${new Date(at).toISOString()}, in ${Math.ceil((at - now) / 1000)} s`;
  else
    message = `stays on ${on}; ${uplink} is the normal choice, and the site returns to it once it is heard through steadily`;
  return { uplink, at, message };
}

/** The site going offline (after having been online) or coming back (after having been offline). */
export function describeReach(before: DecisionState, after: DecisionState, at: number): NewEvent[] {
  const wasOnline = siteMode(before) !== "offline";
  const online = siteMode(after) !== "offline";
  if (wasOnline && !online)
    return [
      {
        at,
        kind: "site-offline",
        message: "site offline: no heartbeat arrives through any uplink (routes are left as they are)",
        data: {},
      },
    ];
  if (!wasOnline && online && before.generation > 0)
    return [{ at, kind: "site-online", message: "site back online", data: {} }];
  return [];
}

/** A server newly cut off from uplinks that work for the rest of the site, or back on them. */
export function describePaths(
  row: AgentRow,
  cutOff: string[],
  decision: DecisionState,
  silenceMs: (uplink: string) => number,
  at: number,
): NewEvent[] {
  const before = row.runtime.cutOff ?? [];
  const lost = cutOff.filter((u) => !before.includes(u));
  // Heard through it again; an uplink that just went down for everyone leaves the set silently.
  const back = before.filter((u) => !cutOff.includes(u) && heardWithin(row, u, at, silenceMs(u)));
  const broken = (u: string) =>
    `${row.id} is not heard through ${u}, which is up for the rest of the site: its own path through ${u} is broken (LAN port, cable or policy routing)` +
    (decision.active === u ? `; the site stays on ${u}, and ${row.id} has no internet through it` : "");
  return [
    ...lost.map(
      (u): NewEvent => ({ at, kind: "agent-cut-off", message: broken(u), data: { agent: row.id, uplink: u } }),
    ),
    ...back.map(
      (u): NewEvent => ({
        at,
        kind: "agent-path-back",
        message: `${row.id} is heard through ${u} again`,
        data: { agent: row.id, uplink: u },
      }),
    ),
  ];
}

export function describeStale(row: AgentRow, lastSeenAt: number, at: number): NewEvent {
  return {
    at,
    kind: "agent-stale",
    message: `${row.id} not heard for ${Math.round((at - lastSeenAt) / 1000)} s`,
    data: { agent: row.id, lastSeenAt },
  };
}

export function describeTunnel(e: TunnelEffect, at: number): NewEvent {
  switch (e.kind) {
    case "tunnel-restart-requested": {
      const late = e.allApplied ? "" : " (not every server applied the switch in time)";
      return {
        at,
        kind: "tunnel-restart-requested",
        message: `${e.agent} asked to restart the tunnels for generation ${e.generation}${late}`,
        data: { agent: e.agent, generation: e.generation, allApplied: e.allApplied },
      };
    }
    case "tunnel-restarted":
      return {
        at,
        kind: "tunnel-restart-done",
        message: `tunnels restarted by ${e.agent} for generation ${e.generation}`,
        data: { agent: e.agent, generation: e.generation },
      };
    case "tunnel-no-restarter": {
      const why = e.offline.length
        ? `${e.offline.join(", ")} ${e.offline.length > 1 ? "are" : "is"} enrolled as tunnel restarter but offline`
        : "no server is enrolled as one (wanwatch site enroll --id ID --role server --tunnel-restarter)";
      return {
        at,
        kind: "tunnel-no-restarter",
        message: `no live tunnel restarter for generation ${e.generation}: ${why}`,
        data: { generation: e.generation, offline: e.offline },
      };
    }
  }
}
