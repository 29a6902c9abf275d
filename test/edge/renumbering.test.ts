import { describe, expect, it } from "vitest";
import { TestAgent, createSite, edgeClock, events, status } from "./support.ts";

const at = edgeClock(Date.UTC(2031, 2, 3, 9, 0, 0));

describe("an ISP that gives its uplink a new public address", () => {
  it("is one uplink-address event when its probe arrives from the new address, and never makes a server look misrouted", async () => {
    await createSite("renumber");
    const sbc1 = await TestAgent.enroll("renumber", "sbc1", "probe", { uplink: "isp1" });
    const sbc2 = await TestAgent.enroll("renumber", "sbc2", "probe", { uplink: "isp2" });
    const srv = await TestAgent.enroll("renumber", "srv", "server");
    const beatAll = async (isp1Ip: string, serverFirst: boolean) => {
      if (serverFirst) await srv.beat("isp1", { ip: isp1Ip });
      await sbc1.beat("isp1", { ip: isp1Ip });
      await sbc2.beat("isp2", { ip: "198.51.100.5" });
      await srv.beat("isp1", { ip: isp1Ip });
      await srv.beat("isp2", { ip: "198.51.100.5" });
    };
    for (let t = 0; t <= 3_000; t += 1_000) at(t), await beatAll("198.51.100.1", false);
    // The new lease: the server's heartbeats may come through before the probe's.
    for (let t = 4_000; t <= 7_000; t += 1_000) at(t), await beatAll("198.51.100.9", t === 4_000);
    const s = await status("renumber");
    expect(s.activeUplink).toBe("isp1");
    expect(s.uplinks[0]).toMatchObject({ id: "isp1", state: "up", observedIp: "198.51.100.9" });
    expect(s.agents.find((a) => a.id === "srv")!.misroutedUplinks).toEqual([]);
    const log = await events("renumber");
    expect(log.filter((e) => e.kind.startsWith("misrouted"))).toEqual([]);
    const moved = log.filter((e) => e.kind === "uplink-address");
    expect(moved).toHaveLength(1);
    expect(moved[0]).toMatchObject({ data: { uplink: "isp1", from: "198.51.100.1", to: "198.51.100.9" } });
    expect(moved[0]!.message).toContain("198.51.100.1 → 198.51.100.9");
  });
});
