import { describe, expect, it } from "vitest";
import { prefix64 } from "../../worker/src/attribution.ts";
import { TestAgent, createSite, edgeClock, events, status } from "./support.ts";

const at = edgeClock(Date.UTC(2031, 2, 3, 9, 0, 0));
const V4 = { isp1: "198.51.100.1", isp2: "198.51.100.5" };

describe("heartbeats over IPv6", () => {
  it("are attributed by the prefix each uplink's probe heartbeats from; a new prefix is one event and no server looks misrouted", async () => {
    await createSite("v6");
    const sbc1 = await TestAgent.enroll("v6", "sbc1", "probe", { uplink: "isp1" });
    const sbc2 = await TestAgent.enroll("v6", "sbc2", "probe", { uplink: "isp2" });
    const srv = await TestAgent.enroll("v6", "srv", "server");
    const beatAll = async (p1: string, serverFirst = false) => {
      if (serverFirst) await srv.beat("isp1", { ip: `${p1}::21` });
      for (const [probe, uplink, p] of [
        [sbc1, "isp1", p1],
        [sbc2, "isp2", "2001:db8:2:0"],
      ] as const) {
        await probe.beat(uplink, { ip: V4[uplink] });
        await probe.beat(uplink, { ip: `${p}::10` });
      }
      for (const [uplink, p] of [
        ["isp1", p1],
        ["isp2", "2001:db8:2:0"],
      ] as const) {
        await srv.beat(uplink, { ip: V4[uplink] });
        await srv.beat(uplink, { ip: `${p}:0:0:0:21` });
      }
    };
    for (let t = 0; t <= 3_000; t += 1_000) at(t), await beatAll("2001:db8:1:0");
    let s = await status("v6");
    expect(s.activeUplink).toBe("isp1");
    expect(s.uplinks.map((u) => u.observedIp)).toEqual([V4.isp1, V4.isp2]);
    expect(s.agents.find((a) => a.id === "srv")!.misroutedUplinks).toEqual([]);

    // A server's IPv6 heartbeat for isp2 that left with isp1's prefix came through isp1.
    at(3_500);
    await srv.beat("isp2", { ip: "2001:db8:1::21" });
    s = await status("v6");
    expect(s.agents.find((a) => a.id === "srv")!.misroutedUplinks).toEqual(["isp2"]);
    const caught = (await events("v6")).filter((e) => e.kind === "misrouted");
    expect(caught.map((e) => e.data)).toEqual([{ agent: "srv", claimed: "isp2", via: "isp1", ip: "2001:db8:1::21" }]);

    // isp1's ISP delegates a new prefix; the server may be heard from it before the probe.
    for (let t = 4_000; t <= 7_000; t += 1_000) at(t), await beatAll("2001:db8:11:0", t === 4_000);
    s = await status("v6");
    expect(s.agents.find((a) => a.id === "srv")!.misroutedUplinks).toEqual([]);
    const log = await events("v6");
    expect(log.filter((e) => e.kind === "misrouted")).toHaveLength(1);
    expect(log.filter((e) => e.kind === "uplink-address")).toEqual([]);
    const moved = log.filter((e) => e.kind === "uplink-prefix");
    expect(moved.map((e) => e.data)).toEqual([{ uplink: "isp1", from: "2001:db8:1::/64", to: "2001:db8:11::/64" }]);
    expect(moved[0]!.message).toBe("isp1: IPv6 prefix 2001:db8:1::/64 → 2001:db8:11::/64");
  });

  it("a /64 is spelt one way however the address is written", () => {
    expect(prefix64("2001:DB8:1::21")).toBe("2001:db8:1::/64");
    expect(prefix64("2001:0db8:0001:0000:0000:0000:0000:0021")).toBe("2001:db8:1::/64");
    expect(prefix64("2001:db8::1")).toBe("2001:db8::/64");
    expect(prefix64("2001:0:0:1::5")).toBe("2001:0:0:1::/64");
    expect(prefix64("2001:db8:1:2:3:4:5:6")).toBe("2001:db8:1:2::/64");
    expect(prefix64("::ffff:192.0.2.1")).toBe("::/64");
    expect(prefix64("198.51.100.1")).toBeNull();
    expect(prefix64("2001:db8::1::2")).toBeNull();
    expect(prefix64("2001:db8")).toBeNull();
  });
});
