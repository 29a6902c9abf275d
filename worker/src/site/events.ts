// Every kind of event a site records, with the data it carries: one typed map, so the narration,
// the store and the notifications spell each fact alike.
import type { AgentRole, PathQuality, UplinkState } from "#shared";
import type { SwitchReason } from "../engine/decision.ts";

type Agent = { agent: string };
type AgentGeneration = { agent: string; generation: number };
type Notified = { target: string; trigger: string; eventSeq: number; attempts: number };

export type EventData = {
  config: { uplinks: string[] };
  "agent-enrolled": Agent;
  "agent-rotated": { agent: string; previousValidUntil: number | null };
  "agent-rotation-done": { agent: string; why: "used" | "expired" };
  "agent-revoked": Agent;
  "enrolment-token-created": {
    agent: string;
    role: AgentRole;
    uplink: string | null;
    expiresAt: number;
    replaced: number;
  };
  "enrolment-token-redeemed": { agent: string; ip: string | null };
  /** A known token refused (used again, expired), or the redemption rate limit tripping (agent null). */
  "enrolment-refused": { agent: string | null; code: string; ip: string | null };
  "override-set": { uplink: string; until: number; reason: string };
  "override-ended": { uplink: string; expired: boolean };
  switch: { from: string | null; to: string; generation: number; reason: SwitchReason };
  /** An uplink's state changed (the engine's `uplink-state` effect). */
  uplink: { uplink: string; from: UplinkState; to: UplinkState; witnesses?: string[] };
  "uplink-quality": { uplink: string; degraded: boolean } & Partial<PathQuality>;
  "uplink-address": { uplink: string; from: string; to: string | null };
  /** The IPv6 /64 an uplink's probe heartbeats from changed (a new delegated prefix). */
  "uplink-prefix": { uplink: string; from: string; to: string };
  /** Agents' IPv6 heartbeats through an uplink stopped while its IPv4 ones go on (no switch). */
  "ipv6-silent": { uplink: string; lastHeardAt: number };
  "ipv6-back": { uplink: string; silentForMs: number };
  "site-offline": Record<string, never>;
  "site-online": Record<string, never>;
  "agent-cut-off": { agent: string; uplink: string };
  "agent-path-back": { agent: string; uplink: string };
  "agent-stale": { agent: string; lastSeenAt: number | null };
  "agent-back": Agent;
  "agent-error": Agent;
  "agent-version": { agent: string; from: string | null; to: string | null };
  "heartbeat-rejected": { agent: string; code: string };
  misrouted: { agent: string; claimed: string; via: string; ip: string | null };
  "misrouted-cleared": { agent: string; uplink: string };
  applied: AgentGeneration;
  /**
   * A server's default routes left the directive and its agent put them back (not a switch).
   * `driftAt`: when the agent saw it, in edge time when its clock offset is known.
   */
  "route-drift": {
    agent: string;
    activeUplink: string;
    routedUplink: string | null;
    routedUplink6: string | null;
    driftAt: number;
    repairedInMs: number;
  };
  /** An agent reports its tunnels restarted (its heartbeat's `tunnelGeneration` moved). */
  "tunnels-restarted": AgentGeneration;
  "tunnel-restart-failed": AgentGeneration;
  "tunnel-restart-requested": { agent: string; generation: number; allApplied: boolean };
  /** The planner saw the restart done (its `tunnel-restarted` effect). */
  "tunnel-restart-done": AgentGeneration;
  "tunnel-no-restarter": { generation: number; offline: string[] };
  notify: Notified & { delivered: true };
  "notify-failed": Notified & { delivered: false; error: string };
  /** The first failed attempt of a send (once per send, not per retry): retries go on for hours. */
  "notify-retrying": Notified & { error: string; nextAttemptAt: number };
  /** A metered uplink passed a share of its data cap this period (once per threshold and period). */
  "data-cap": { uplink: string; percent: number; usedMB: number; capMB: number; resetsAt: number };
  /** `wanwatch site notify --test`: how many targets were tried, how many failed. */
  "notify-test": { targets: number; failed: number };
};

export type EventKind = keyof EventData;

/** An event about to be recorded: its data is the one its kind carries. */
export type NewEvent = { [K in EventKind]: { at: number; kind: K; message: string; data: EventData[K] } }[EventKind];

export type EventOf<K extends EventKind> = Extract<NewEvent, { kind: K }>;
