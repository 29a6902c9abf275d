// A newer agent must keep working with an older edge, whose heartbeat schema is strict: fields
// beyond the base set travel only to an edge that listed them in `accepts`.
import { describe, expect, it } from "vitest";
import { z } from "zod";
import { BASE_HEARTBEAT_FIELDS, Heartbeat, heartbeatExtensions, heartbeatFor } from "#shared";

// What a 0.2 edge parses: exactly these fields, strictly (written out here, not derived from the code).
const OLD_EDGE = z.strictObject({
  type: z.literal("heartbeat"),
  seq: z.int(),
  uplink: z.string(),
  version: z.string(),
  appliedGeneration: z.int().nullable(),
  tunnelGeneration: z.int().nullable(),
  lastError: z.string().nullable(),
  rttEdgeMs: z.number().nullable().optional(),
  rttGatewayMs: z.number().nullable().optional(),
  clockOffsetMs: z.number().nullable().optional(),
  path: z.object({ lossRatio: z.number(), rttMs: z.number().nullable(), samples: z.int() }).nullable().optional(),
  routedUplink: z.string().nullable().optional(),
});

const base: Heartbeat = {
  type: "heartbeat",
  seq: 7,
  uplink: "isp1",
  version: "0.3.0",
  appliedGeneration: 2,
  tunnelGeneration: 1,
  lastError: null,
  rttEdgeMs: 12,
  rttGatewayMs: 1,
  clockOffsetMs: 0,
  path: { lossRatio: 0, rttMs: 11, samples: 60 },
  routedUplink: "isp1",
};

describe("heartbeat fields beyond the base set", () => {
  it("the base set is what a 0.2 edge accepts, no more and no less", () => {
    expect([...BASE_HEARTBEAT_FIELDS].sort()).toEqual(Object.keys(OLD_EDGE.shape).sort());
  });

  it("an edge that listed nothing gets the base fields only, which an old edge accepts", () => {
    const withExtra = { ...base, futureField: 3 } as Heartbeat;
    expect(OLD_EDGE.safeParse(withExtra).success).toBe(false);
    const sent = heartbeatFor(withExtra, new Set());
    expect(OLD_EDGE.parse(sent)).toEqual(base);
  });

  it("an edge that listed a field gets it", () => {
    const withExtra = { ...base, futureField: 3 } as Heartbeat;
    expect(heartbeatFor(withExtra, new Set(["futureField"]))).toEqual(withExtra);
  });

  it("this edge lists every field of its own schema beyond the base, so an agent of the same release sends all", () => {
    const listed = new Set(heartbeatExtensions());
    for (const k of Object.keys(Heartbeat.shape)) expect(BASE_HEARTBEAT_FIELDS.has(k) || listed.has(k)).toBe(true);
    for (const k of listed) expect(BASE_HEARTBEAT_FIELDS.has(k)).toBe(false);
  });
});
