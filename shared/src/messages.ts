import { z } from "zod";
import { UplinkId } from "./ids.ts";

const Generation = z.int().min(0).max(Number.MAX_SAFE_INTEGER);

/** Loss and latency of a path, dpinger-style: the share of probes unanswered, and the median answer. */
export const PathQuality = z.strictObject({
  lossRatio: z.number().min(0).max(1),
  rttMs: z.number().min(0).max(120_000).nullable(),
  samples: z.int().min(0).max(10_000),
});
export type PathQuality = z.infer<typeof PathQuality>;

/**
 * The host's default routes left the directive and the server agent put them back. `at` is when it
 * saw the drift, on the agent's own clock: with the agent, the repair's identity (a repair travels
 * in several heartbeats; the edge records each once).
 */
export const RouteDrift = z.strictObject({
  at: z.int().min(0).max(Number.MAX_SAFE_INTEGER),
  // Where the default routes led instead (null: nowhere): IPv4's uplink, and IPv6's.
  routedUplink: UplinkId.nullable(),
  routedUplink6: UplinkId.nullable(),
  activeUplink: UplinkId,
  repairedInMs: z.int().min(0).max(86_400_000),
});
export type RouteDrift = z.infer<typeof RouteDrift>;

/**
 * One interface's cumulative counters, both directions. `counter` names the counting (the host's
 * boot and the interface's index): when it changes, the counters started again from zero.
 */
export const UplinkBytes = z.strictObject({
  uplink: UplinkId,
  counter: z.string().min(1).max(64),
  rx: z.int().min(0).max(Number.MAX_SAFE_INTEGER),
  tx: z.int().min(0).max(Number.MAX_SAFE_INTEGER),
});
export type UplinkBytes = z.infer<typeof UplinkBytes>;

/** What an agent sends, once per heartbeat interval, through one uplink. */
export const Heartbeat = z.strictObject({
  type: z.literal("heartbeat"),
  seq: z.int().min(0).max(Number.MAX_SAFE_INTEGER),
  uplink: UplinkId,
  version: z.string().min(1).max(32),
  appliedGeneration: Generation.nullable(),
  tunnelGeneration: Generation.nullable(),
  lastError: z.string().max(500).nullable(),
  // The agent's own measurements; informational, never evidence by themselves.
  rttEdgeMs: z.number().min(0).max(120_000).nullable().optional(),
  rttGatewayMs: z.number().min(0).max(120_000).nullable().optional(),
  // Edge time minus the agent's clock, as the agent keeps it (it signs with edge time): a wrong
  // clock is still accepted, and shown.
  clockOffsetMs: z.number().min(-1e13).max(1e13).nullable().optional(),
  // A probe's view of its path to the edge over its last minute (TCP handshakes, one per heartbeat).
  path: PathQuality.nullable().optional(),
  // The uplink the host's own routing table uses now (server agents).
  routedUplink: UplinkId.nullable().optional(),
  // Witness reports (server agents): uplinks whose heartbeats from this agent went unanswered while
  // this one answers, each with the edge time of the first unanswered heartbeat.
  unanswered: z
    .array(z.strictObject({ uplink: UplinkId, since: z.int().min(0).max(Number.MAX_SAFE_INTEGER) }))
    .max(8)
    .optional(),
  // The route drifts a server agent repaired lately, oldest first (only to an edge that accepts it).
  routeDrifts: z.array(RouteDrift).max(8).optional(),
  // The kernel's byte counters of each uplink's interface on this host, now and then (only to an
  // edge that accepts it): the edge counts metered uplinks' use against their data caps.
  uplinkBytes: z.array(UplinkBytes).max(8).optional(),
});
export type Heartbeat = z.infer<typeof Heartbeat>;
export type Unanswered = NonNullable<Heartbeat["unanswered"]>[number];

/**
 * The heartbeat fields every edge since 0.2 accepts. An edge refuses fields it does not know (the
 * schema is strict), so an agent sends any other field only to an edge that has listed it in
 * `accepts`: a newer agent keeps working with an older edge. A new field needs no more than
 * its place in `Heartbeat`; the edge lists it by itself (`heartbeatExtensions`).
 */
export const BASE_HEARTBEAT_FIELDS: ReadonlySet<string> = new Set([
  "type",
  "seq",
  "uplink",
  "version",
  "appliedGeneration",
  "tunnelGeneration",
  "lastError",
  "rttEdgeMs",
  "rttGatewayMs",
  "clockOffsetMs",
  "path",
  "routedUplink",
]);

/** What this edge accepts beyond the base fields: what it advertises in `accepts`. */
export const heartbeatExtensions = (): string[] =>
  Object.keys(Heartbeat.shape).filter((k) => !BASE_HEARTBEAT_FIELDS.has(k));

/** A heartbeat as one edge accepts it: fields beyond the base only when that edge listed them. */
export function heartbeatFor(hb: Heartbeat, accepts: ReadonlySet<string>): Heartbeat {
  const kept = Object.entries(hb).filter(([k]) => BASE_HEARTBEAT_FIELDS.has(k) || accepts.has(k));
  return Object.fromEntries(kept) as Heartbeat;
}

// What the edge sends is parsed loosely (unknown fields dropped): a newer edge may add fields
// without cutting off the agents already deployed. Agents before 0.2 parsed it strictly.
export const Directive = z.object({
  generation: Generation,
  activeUplink: UplinkId,
  restartTunnels: z.boolean(),
});
export type Directive = z.infer<typeof Directive>;

/** What the edge sends to an agent: in answer to each heartbeat, and pushed when the directive changes. */
export const EdgeMessage = z.discriminatedUnion("type", [
  z.object({
    type: z.literal("directive"),
    directive: Directive.nullable(),
    now: z.int(),
    ackSeq: z.int().nullable(),
    // The site's policy.downAfterMs: a probe counts handshakes lost in a shorter silence as loss,
    // since the edge rides such a silence out instead of calling the uplink down. Only to agents
    // that accept fields they do not know.
    downAfterMs: z.int().min(1).max(600_000).optional(),
    // The site's policy.heartbeatMs: the one source of the agents' interval (their own config's is
    // only used until the first answer). Only to agents that accept fields they do not know.
    heartbeatMs: z.int().min(250).max(60_000).optional(),
    // This agent's interval through the uplinks where it is not heartbeatMs (a metered one standing
    // by is heartbeated slowly); absent: heartbeatMs through every uplink. Only to agents that
    // accept fields they do not know.
    uplinkHeartbeatMs: z.record(UplinkId, z.int().min(250).max(3_600_000)).optional(),
    // The heartbeat fields beyond BASE_HEARTBEAT_FIELDS this edge accepts. Only to agents that
    // accept fields they do not know, and only when there are any.
    accepts: z.array(z.string().min(1).max(64)).max(64).optional(),
  }),
  z.object({
    type: z.literal("error"),
    now: z.int(),
    error: z.object({ code: z.string(), message: z.string() }),
  }),
]);

/** An agent of this version ignores fields of an edge message it does not know (0.2 on; dev builds too). */
export function acceptsNewFields(agentVersion: string | null): boolean {
  const m = /^(\d+)\.(\d+)\.(\d+)/.exec(agentVersion ?? "");
  if (!m) return false;
  const [major, minor, patch] = m.slice(1).map(Number) as [number, number, number];
  return major > 0 || minor >= 2 || (major === 0 && minor === 0 && patch === 0);
}
export type EdgeMessage = z.infer<typeof EdgeMessage>;

/** A WebSocket frame in either direction: the signed body travels as the exact string that was signed. */
export const SignedFrame = z.strictObject({
  ts: z.int(),
  sig: z.string().min(1).max(128),
  body: z.string().max(8_192),
});
export type SignedFrame = z.infer<typeof SignedFrame>;

export const MAX_HEARTBEAT_BYTES = 8_192;
