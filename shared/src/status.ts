import { z } from "zod";
import { AgentRole } from "./admin.ts";
import { Directive } from "./messages.ts";

export const UplinkState = z.enum(["up", "down", "unknown"]);
export type UplinkState = z.infer<typeof UplinkState>;

export const SiteMode = z.enum(["auto", "override", "offline"]);
export type SiteMode = z.infer<typeof SiteMode>;

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
});

export const AgentStatus = z.object({
  id: z.string(),
  role: AgentRole,
  uplink: z.string().nullable(),
  tunnelRestarter: z.boolean(),
  lastSeenAt: z.int().nullable(),
  stale: z.boolean(),
  uplinksSeen: z.array(z.string()),
  misroutedUplinks: z.array(z.string()),
  appliedGeneration: z.int().nullable(),
  tunnelGeneration: z.int().nullable(),
  routedUplink: z.string().nullable(),
  lastError: z.string().nullable(),
  version: z.string().nullable(),
});

export const TunnelStatus = z.object({
  mode: z.enum(["cluster", "per-server", "none"]),
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
});
export type SiteStatus = z.infer<typeof SiteStatus>;
export type UplinkStatus = z.infer<typeof UplinkStatus>;
export type AgentStatus = z.infer<typeof AgentStatus>;

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
