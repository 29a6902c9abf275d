import { describe, expect, it } from "vitest";
import { TestAgent, call, createSite, edgeClock, events, status } from "./support.ts";

const at = edgeClock(Date.UTC(2026, 0, 1));

describe("a degraded primary", () => {
  it("is shown, announced and left for a healthy backup on its probe's loss; a server's view of the path does not count", async () => {
    await createSite("lossy", {
      uplinks: [
        { id: "isp1", priority: 1 },
        { id: "isp2", priority: 2 },
      ],
      policy: { heartbeatMs: 1_000, downAfterMs: 3_000, failbackAfterMs: 60_000, minDwellMs: 0 },
    });
    const sbc1 = await TestAgent.enroll("lossy", "sbc1", "probe", { uplink: "isp1" });
    const sbc2 = await TestAgent.enroll("lossy", "sbc2", "probe", { uplink: "isp2" });
    const srv1 = await TestAgent.enroll("lossy", "srv1", "server");
    const good = { lossRatio: 0, rttMs: 20, samples: 60 };
    const lossy = { lossRatio: 0.35, rttMs: 45, samples: 60 };
    for (let t = 0; t <= 4_000; t += 1_000) {
      at(t);
      await sbc1.beat("isp1", { ip: "198.51.100.1", extra: { path: good } });
      await sbc2.beat("isp2", { ip: "198.51.100.5", extra: { path: good } });
    }
    // Servers report no path judgement of their own: a server's heartbeat cannot degrade an uplink.
    await srv1.beat("isp1", { ip: "198.51.100.1", extra: { path: lossy } as never });
    expect((await status("lossy")).uplinks[0]).toMatchObject({ id: "isp1", degraded: false, lossRatio: 0 });
    at(5_000);
    const d = await sbc1.beat("isp1", { ip: "198.51.100.1", extra: { path: lossy } });
    expect(d).toMatchObject({ activeUplink: "isp2", generation: 2 });
    const s = await status("lossy");
    expect(s.uplinks[0]).toMatchObject({ id: "isp1", state: "up", degraded: true, lossRatio: 0.35, pathRttMs: 45 });
    const ev = await events("lossy", 10);
    expect(ev.find((e) => e.kind === "uplink-quality")!.message).toBe(
      "isp1: degraded (35 % of 60 handshakes to the edge lost, median 45 ms, by its probe)",
    );
    expect(ev.find((e) => e.kind === "switch")!.message).toBe("degraded: isp1 → isp2 (generation 2)");
    const metrics = (await call("GET", "/v1/sites/lossy/metrics")).text;
    expect(metrics).toContain('wanwatch_uplink_degraded{site="lossy",uplink="isp1"} 1');
    expect(metrics).toContain('wanwatch_uplink_loss_ratio{site="lossy",uplink="isp1"} 0.35');
  });

  it("refuses a path report that is not a share or names no sample count", async () => {
    await createSite("lossy-bad");
    const sbc1 = await TestAgent.enroll("lossy-bad", "sbc1", "probe", { uplink: "isp1" });
    const r = await sbc1.postRaw(sbc1.heartbeatBody("isp1", { path: { lossRatio: 1.5, rttMs: 1, samples: 3 } }));
    expect(r.status).toBe(400);
    expect(r.json.error.issues[0].path).toBe("path.lossRatio");
  });
});
