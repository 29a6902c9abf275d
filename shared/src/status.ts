import { z } from "zod";
import { AgentRole } from "./admin.ts";
import { TunnelRestartMode } from "./config.ts";
import { Directive } from "./messages.ts";
import { NotifyStatus } from "./notify.ts";

export const UplinkState = z.enum(["up", "down", "unknown"]);
export type UplinkState = z.infer<typeof UplinkState>;

export const SiteMode = z.enum(["auto", "override", "offline"]);
export type SiteMode = z.infer<typeof SiteMode>;

/** A metered uplink's use this period, counted from its hosts' interface counters. */
export const DataUse = z.object({
  usedMB: z.number(),
  /** Null: metered without a cap (counted, never announced). */
  capMB: z.int().nullable(),
  percent: z.number().nullable(),
  periodStart: z.int(),
  resetsAt: z.int(),
});
export type DataUse = z.infer<typeof DataUse>;
/**
 * Whether agents' IPv6 heartbeats come through an uplink: within the uplink's silence window
 * (twice downAfterMs at its slowest cadence), heard before but not since, or not since the edge woke.
 */
export const Ipv6Heard = z.enum(["heard", "silent", "none"]);
export type Ipv6Heard = z.infer<typeof Ipv6Heard>;

export const UplinkStatus = z.object({
  id: z.string(),
  name: z.string().nullable(),
  priority: z.int(),
  state: UplinkState,
  since: z.int().nullable(),
  lastHeartbeatAt: z.int().nullable(),
  observedIp: z.string().nullable(),
  observedAsn: z.int().nullable(),
  rttMs: z.number().nullable(),
  gatewayRttMs: z.number().nullable(),
  /** The probe's last minute of handshakes to the edge: lost share and median round trip. */
  lossRatio: z.number().nullable(),
  pathRttMs: z.number().nullable(),
  /** Up, but over the policy's loss or latency threshold: left for a healthy uplink. */
  degraded: z.boolean(),
  /** Metered uplinks only. */
  dataUse: DataUse.optional(),
  /** Optional: edges before IPv6 channels do not send them. */
  ipv6: Ipv6Heard.optional(),
  lastIpv6HeartbeatAt: z.int().nullable().optional(),
});

export const AgentStatus = z.object({
  id: z.string(),
  role: AgentRole,
  uplink: z.string().nullable(),
  tunnelRestarter: z.boolean(),
  lastSeenAt: z.int().nullable(),
  stale: z.boolean(),
  uplinksSeen: z.array(z.string()),
  /** Of those, the ones heard over IPv6 too (optional: edges before IPv6 channels do not send it). */
  ipv6Uplinks: z.array(z.string()).optional(),
  misroutedUplinks: z.array(z.string()),
  appliedGeneration: z.int().nullable(),
  tunnelGeneration: z.int().nullable(),
  routedUplink: z.string().nullable(),
  lastError: z.string().nullable(),
  version: z.string().nullable(),
  /** Edge time minus the agent's clock: how wrong the host's clock is (the agent corrects for it). */
  clockOffsetMs: z.number().nullable(),
});

export const TunnelStatus = z.object({
  mode: TunnelRestartMode,
  generation: z.int(),
  restarter: z.string().nullable(),
  requestedAt: z.int().nullable(),
  done: z.boolean(),
});

export const SiteStatus = z.object({
  site: z.string(),
  now: z.int(),
  activeUplink: z.string().nullable(),
  generation: z.int(),
  mode: SiteMode,
  since: z.int().nullable(),
  override: z.object({ uplink: z.string(), until: z.int(), reason: z.string() }).nullable(),
  directive: Directive.nullable(),
  uplinks: z.array(UplinkStatus),
  agents: z.array(AgentStatus),
  tunnels: TunnelStatus,
  notify: NotifyStatus,
});
export type SiteStatus = z.infer<typeof SiteStatus>;
export type UplinkStatus = z.infer<typeof UplinkStatus>;
export type AgentStatus = z.infer<typeof AgentStatus>;

/** `DELETE /v1/sites/:site/override`: the status, and when the site returns to its normal choice. */
export const OverrideCleared = SiteStatus.extend({
  normalChoice: z.object({
    /** The uplink the policy picks without an override (null while none is up). */
    uplink: z.string().nullable(),
    /** When the site is (or will be) on it; null when that waits on something other than time. */
    at: z.int().nullable(),
    message: z.string(),
  }),
});
export type OverrideCleared = z.infer<typeof OverrideCleared>;

export const SiteEvent = z.object({
  seq: z.int(),
  at: z.int(),
  kind: z.string(),
  message: z.string(),
  data: z.record(z.string(), z.unknown()).nullable(),
});
export type SiteEvent = z.infer<typeof SiteEvent>;

export const ApiError = z.object({
  error: z.object({
    code: z.string(),
    message: z.string(),
    issues: z.array(z.object({ path: z.string(), message: z.string() })).optional(),
  }),
});
export type ApiError = z.infer<typeof ApiError>;

/** One stretch of an uplink's state on the status page's 24-hour strip. */
export const StateSegment = z.object({ from: z.int(), to: z.int(), state: UplinkState });
export const UplinkAvailability = z.object({ uplink: z.string(), segments: z.array(StateSegment) });
export type StateSegment = z.infer<typeof StateSegment>;
export type UplinkAvailability = z.infer<typeof UplinkAvailability>;

/** What the edge pushes to a status page over `GET /v1/sites/:site/live`. */
export const LiveMessage = z.discriminatedUnion("type", [
  z.object({
    type: z.literal("snapshot"),
    status: SiteStatus,
    events: z.array(SiteEvent),
    availability: z.array(UplinkAvailability),
  }),
  z.object({ type: z.literal("update"), status: SiteStatus, events: z.array(SiteEvent) }),
]);
export type LiveMessage = z.infer<typeof LiveMessage>;

/** A line of `GET /v1/sites`: enough to pick a site and see that something is wrong. */
export const SiteSummary = z.object({
  site: z.string(),
  activeUplink: z.string().nullable(),
  mode: SiteMode,
  since: z.int().nullable(),
  uplinks: z.array(z.object({ id: z.string(), name: z.string().nullable(), state: UplinkState })),
  agents: z.int(),
  staleAgents: z.int(),
});
export type SiteSummary = z.infer<typeof SiteSummary>;
