import { describe, expect, it } from "vitest";
import type { RouteDrift } from "#shared";
import { TestAgent, createSite, edgeClock, events } from "./support.ts";

const at = edgeClock(Date.UTC(2031, 2, 3, 9, 0, 0));

describe("a server agent's repaired route drift", () => {
  it("is one route-drift event per repair, however many heartbeats through however many uplinks repeat it, and no switch", async () => {
    await createSite("drift");
    const sbc1 = await TestAgent.enroll("drift", "sbc1", "probe", { uplink: "isp1" });
    const sbc2 = await TestAgent.enroll("drift", "sbc2", "probe", { uplink: "isp2" });
    const srv = await TestAgent.enroll("drift", "srv", "server");
    const renewal: RouteDrift = {
      at: 1_000_000,
      routedUplink: "isp2",
      routedUplink6: "isp1",
      activeUplink: "isp1",
      repairedInMs: 340,
    };
    const handEdit: RouteDrift = {
      ...renewal,
      at: 1_004_000,
      routedUplink: "isp1",
      routedUplink6: null,
      repairedInMs: 95,
    };
    const beatAll = async (routeDrifts?: RouteDrift[]) => {
      await sbc1.beat("isp1", { ip: "198.51.100.1" });
      await sbc2.beat("isp2", { ip: "198.51.100.5" });
      for (const [uplink, ip] of [
        ["isp1", "198.51.100.1"],
        ["isp2", "198.51.100.5"],
      ] as const)
        await srv.beat(uplink, { ip, extra: { routeDrifts, clockOffsetMs: 250 } });
    };
    at(0);
    await beatAll();
    for (let t = 1_000; t <= 3_000; t += 1_000) at(t), await beatAll([renewal]);
    for (let t = 4_000; t <= 6_000; t += 1_000) at(t), await beatAll([renewal, handEdit]);
    const log = await events("drift");
    const drifts = log.filter((e) => e.kind === "route-drift").sort((a, b) => a.data.driftAt - b.data.driftAt);
    expect(drifts.map((e) => e.data)).toEqual([
      {
        agent: "srv",
        activeUplink: "isp1",
        routedUplink: "isp2",
        routedUplink6: "isp1",
        driftAt: 1_000_250,
        repairedInMs: 340,
      },
      {
        agent: "srv",
        activeUplink: "isp1",
        routedUplink: "isp1",
        routedUplink6: null,
        driftAt: 1_004_250,
        repairedInMs: 95,
      },
    ]);
    expect(drifts[0]!.message).toBe(
      "srv's default route left isp1 (IPv4 through isp2); the agent put it back in 340 ms",
    );
    expect(drifts[1]!.message).toBe(
      "srv's default route left isp1 (IPv6 through no uplink); the agent put it back in 95 ms",
    );
    expect(log.filter((e) => e.kind === "switch").map((e) => e.data.reason)).toEqual(["initial"]);
  });
});
