import { describe, expect, it } from "vitest";
import { createSite, edgeClock, events, status, TestAgent, twoUplinks } from "./support.ts";

const at = edgeClock(Date.UTC(2026, 11, 3, 12, 0, 0));

const meteredSite = (extra = {}) =>
  twoUplinks(
    {},
    {
      uplinks: [
        { id: "isp1", priority: 1, name: "Fiber" },
        { id: "isp2", priority: 2, name: "LTE", metered: true },
      ],
      ...extra,
    },
  );

/** The per-uplink intervals in the edge's answer to one heartbeat. */
async function intervals(a: TestAgent, uplink: string): Promise<Record<string, number> | undefined> {
  const r = await a.postRaw(a.heartbeatBody(uplink));
  expect(r.status).toBe(200);
  return (r.json as { uplinkHeartbeatMs?: Record<string, number> }).uplinkHeartbeatMs;
}

describe("a metered uplink standing by", () => {
  it("is heartbeated slowly by its probe and rarely by servers; with no probe behind it, one server watches it", async () => {
    await createSite("m-rates", meteredSite());
    const srv2 = await TestAgent.enroll("m-rates", "srv2", "server");
    const srv1 = await TestAgent.enroll("m-rates", "srv1", "server");
    at(0);
    expect(await intervals(srv1, "isp1")).toEqual({ isp2: 30_000 });
    expect(await intervals(srv2, "isp1")).toEqual({ isp2: 600_000 });
    const sbc2 = await TestAgent.enroll("m-rates", "sbc2", "probe", { uplink: "isp2" });
    expect(await intervals(sbc2, "isp2")).toEqual({ isp2: 30_000 });
    expect(await intervals(srv1, "isp1")).toEqual({ isp2: 600_000 });
  });

  it("sends no per-uplink intervals to a site without metered uplinks", async () => {
    await createSite("m-none");
    const srv1 = await TestAgent.enroll("m-none", "srv1", "server");
    at(0);
    expect(await intervals(srv1, "isp1")).toBeUndefined();
  });

  it("takes over at once from a cut primary, is then heartbeated at full rate, and slowly again after the failback", async () => {
    await createSite("m-fo", meteredSite({ policy: { failbackAfterMs: 5_000, minDwellMs: 0 } }));
    const sbc1 = await TestAgent.enroll("m-fo", "sbc1", "probe", { uplink: "isp1" });
    const sbc2 = await TestAgent.enroll("m-fo", "sbc2", "probe", { uplink: "isp2" });
    const srv1 = await TestAgent.enroll("m-fo", "srv1", "server");
    // 90 s of steady state: isp1 every second, the standby's probe every 30 s, the server's check once.
    for (let t = 0; t <= 90_000; t += 1_000) {
      at(t);
      await sbc1.beat("isp1");
      await srv1.beat("isp1");
      if (t % 30_000 === 0) await sbc2.beat("isp2");
    }
    at(90_500);
    await srv1.beat("isp2");
    let s = await status("m-fo");
    expect(s.uplinks.map((u) => [u.id, u.state])).toEqual([
      ["isp1", "up"],
      ["isp2", "up"],
    ]);
    expect(s.agents.filter((a) => a.stale)).toEqual([]);
    expect(s.activeUplink).toBe("isp1");

    // isp1 is cut after 90 s; the server's standby channel speeds up 2 s later (its primary went quiet).
    at(92_999);
    expect(await srv1.beat("isp2")).toMatchObject({ activeUplink: "isp1" });
    at(93_000);
    // Judged at the first heartbeat a downAfterMs after the primary's last: as for any backup.
    expect(await srv1.beat("isp2")).toMatchObject({ activeUplink: "isp2", generation: 2 });
    expect(await intervals(sbc2, "isp2")).toBeUndefined();
    expect(await intervals(srv1, "isp2")).toBeUndefined();

    // isp1 back; after the hold-down the site returns, and isp2 is watched slowly again.
    for (let t = 95_000; t <= 101_000; t += 1_000) {
      at(t);
      await sbc1.beat("isp1");
      await sbc2.beat("isp2");
      await srv1.beat("isp1");
      await srv1.beat("isp2");
    }
    s = await status("m-fo");
    expect(s.activeUplink).toBe("isp1");
    expect(await intervals(sbc2, "isp2")).toEqual({ isp2: 30_000 });
    const kinds = (await events("m-fo")).map((e) => e.kind);
    expect(kinds).not.toContain("agent-stale");
    expect(kinds).not.toContain("agent-cut-off");
  });
});
