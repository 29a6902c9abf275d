import { describe, expect, it } from "vitest";
import { channelInterval, type CadenceInput } from "../../agent/src/edge/cadence.ts";

const base: CadenceInput = {
  siteMs: 1_000,
  assigned: { isp1: 1_000, isp2: 600_000 },
  active: "isp1",
  channels: ["isp1", "isp2"],
  lastContact: new Map([["isp1", 10_000]]),
  now: 10_500,
};

describe("channel intervals", () => {
  it("are the edge's per uplink while the active uplink answers", () => {
    expect(channelInterval("isp1", base)).toBe(1_000);
    expect(channelInterval("isp2", base)).toBe(600_000);
  });

  it("are the site's on every channel once the active uplink's has gone unanswered for two intervals", () => {
    expect(channelInterval("isp2", { ...base, now: 12_000 })).toBe(600_000);
    expect(channelInterval("isp2", { ...base, now: 12_001 })).toBe(1_000);
    expect(channelInterval("isp1", { ...base, now: 60_000 })).toBe(1_000);
  });

  it("are the edge's for an agent with no channel through the active uplink (a probe behind the standby)", () => {
    const probe = { ...base, assigned: { isp2: 30_000 }, channels: ["isp2"], lastContact: new Map() };
    expect(channelInterval("isp2", { ...probe, now: 1e9 })).toBe(30_000);
  });

  it("are the site's for uplinks the edge gave none (an edge without metered uplinks)", () => {
    expect(channelInterval("isp2", { ...base, assigned: {} })).toBe(1_000);
  });
});
