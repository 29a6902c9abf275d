import { runDurableObjectAlarm } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { createSite, edgeClock, events, status, stubFor, TestAgent } from "./support.ts";

const at = edgeClock(Date.UTC(2026, 10, 23, 12, 0, 0));

async function site(name: string) {
  await createSite(name);
  return {
    sbc1: await TestAgent.enroll(name, "sbc1", "probe", { uplink: "isp1" }),
    sbc2: await TestAgent.enroll(name, "sbc2", "probe", { uplink: "isp2" }),
  };
}

/** Both probes beat once a second over [from, to). */
async function bothBeat(a: TestAgent, b: TestAgent, from: number, to: number) {
  for (let t = from; t < to; t += 1_000) {
    at(t);
    await a.beat("isp1");
    await b.beat("isp2");
  }
}

const switches = async (name: string) =>
  (await events(name))
    .filter((e) => e.kind === "switch")
    .map((e) => e.message)
    .reverse();

describe("failover and failback", () => {
  it("chooses the primary, leaves it when silent (alarm, no message), returns after the hold-down", async () => {
    const { sbc1, sbc2 } = await site("fo");
    await bothBeat(sbc1, sbc2, 0, 10_000);
    expect((await status("fo")).activeUplink).toBe("isp1");

    // The primary's last heartbeat was at 9 s; the backup's comes at 11 s.
    at(11_000);
    await sbc2.beat("isp2");
    at(11_999);
    expect(await runDurableObjectAlarm(stubFor("fo"))).toBe(true);
    expect((await status("fo")).activeUplink).toBe("isp1");
    at(12_000);
    expect(await runDurableObjectAlarm(stubFor("fo"))).toBe(true);
    const s = await status("fo");
    expect(s).toMatchObject({ activeUplink: "isp2", generation: 2, mode: "auto" });
    expect(s.uplinks.map((u) => [u.id, u.state])).toEqual([
      ["isp1", "down"],
      ["isp2", "up"],
    ]);

    // The primary returns at 13 s: nothing moves for failbackAfterMs (60 s).
    await bothBeat(sbc1, sbc2, 13_000, 73_000);
    expect((await status("fo")).activeUplink).toBe("isp2");
    at(73_000);
    expect(await sbc1.beat("isp1")).toEqual({ generation: 3, activeUplink: "isp1", restartTunnels: false });
    expect(await switches("fo")).toEqual([
      "active uplink: isp1 (generation 1)",
      "failover: isp1 → isp2 (generation 2)",
      "failback: isp2 → isp1 (generation 3)",
    ]);
  });

  it("waits for the primary's first grace period before choosing the backup", async () => {
    const { sbc2, sbc1 } = await site("fo-first");
    expect(await sbc2.beat("isp2")).toBeNull();
    at(1_000);
    expect(await sbc1.beat("isp1")).toEqual({ generation: 1, activeUplink: "isp1", restartTunnels: false });
  });

  it("changes nothing when every uplink is silent, and converges when one returns", async () => {
    const { sbc1, sbc2 } = await site("fo-dark");
    await bothBeat(sbc1, sbc2, 0, 5_000);
    at(60_000);
    await runDurableObjectAlarm(stubFor("fo-dark"));
    const dark = await status("fo-dark");
    expect(dark).toMatchObject({ activeUplink: "isp1", generation: 1, mode: "offline" });
    expect(dark.uplinks.map((u) => u.state)).toEqual(["unknown", "unknown"]);
    // Only the backup returns: the primary is now judged down and the site moves.
    await sbc2.beat("isp2");
    expect((await status("fo-dark")).activeUplink).toBe("isp2");
  });

  it("does not fail back sooner than minDwellMs after the last switch", async () => {
    await createSite("fo-dwell", {
      uplinks: [
        { id: "isp1", priority: 1 },
        { id: "isp2", priority: 2 },
      ],
      policy: { heartbeatMs: 1_000, downAfterMs: 3_000, failbackAfterMs: 0, minDwellMs: 10_000 },
    });
    const sbc1 = await TestAgent.enroll("fo-dwell", "sbc1", "probe", { uplink: "isp1" });
    const sbc2 = await TestAgent.enroll("fo-dwell", "sbc2", "probe", { uplink: "isp2" });
    await bothBeat(sbc1, sbc2, 0, 3_000);
    for (let t = 3_000; t <= 5_000; t += 1_000) {
      at(t);
      await sbc2.beat("isp2");
    }
    expect((await status("fo-dwell")).activeUplink).toBe("isp2"); // switched at 5 s
    await bothBeat(sbc1, sbc2, 6_000, 15_000);
    expect((await status("fo-dwell")).activeUplink).toBe("isp2");
    at(15_000);
    await sbc1.beat("isp1");
    expect((await status("fo-dwell")).activeUplink).toBe("isp1");
  });

  it("obeys an override until it expires, then returns under the normal policy", async () => {
    const { sbc1, sbc2 } = await site("fo-pin");
    await bothBeat(sbc1, sbc2, 0, 2_000);
    const { call } = await import("./support.ts");
    const pin = await call("POST", "/v1/sites/fo-pin/override", {
      uplink: "isp2",
      forSeconds: 30,
      reason: "modem swap",
    });
    expect(pin.status).toBe(200);
    expect(pin.json).toMatchObject({
      activeUplink: "isp2",
      mode: "override",
      override: { uplink: "isp2", reason: "modem swap" },
    });
    await bothBeat(sbc1, sbc2, 2_000, 31_000);
    expect((await status("fo-pin")).activeUplink).toBe("isp2");
    at(32_000);
    await runDurableObjectAlarm(stubFor("fo-pin"));
    const s = await status("fo-pin");
    // isp1 has been up for the whole override (> failbackAfterMs? no: 32 s < 60 s), so it waits.
    expect(s).toMatchObject({ activeUplink: "isp2", mode: "auto", override: null });
    await bothBeat(sbc1, sbc2, 32_000, 61_000);
    at(61_000);
    await sbc1.beat("isp1");
    expect((await status("fo-pin")).activeUplink).toBe("isp1");
    const kinds = (await events("fo-pin")).map((e) => e.kind);
    expect(kinds).toContain("override-set");
    expect(kinds).toContain("override-ended");
  });
  it("an override pins a down uplink for its whole term, then the site fails over as usual", async () => {
    const { sbc1, sbc2 } = await site("fo-pin-down");
    await bothBeat(sbc1, sbc2, 0, 5_000);
    for (let t = 5_000; t <= 9_000; t += 1_000) {
      at(t);
      await sbc1.beat("isp1");
    }
    expect((await status("fo-pin-down")).uplinks.map((u) => [u.id, u.state])).toEqual([
      ["isp1", "up"],
      ["isp2", "down"],
    ]);
    const { call } = await import("./support.ts");
    const pin = await call("POST", "/v1/sites/fo-pin-down/override", {
      uplink: "isp2",
      forSeconds: 30,
      reason: "test the LTE modem",
    });
    expect(pin.json).toMatchObject({ activeUplink: "isp2", mode: "override" });
    expect((await events("fo-pin-down")).find((e) => e.kind === "override-set")?.message).toMatch(
      /although isp2 is not up$/,
    );
    // isp2 stays silent and down; the pin holds through heartbeats and alarms alike.
    for (let t = 10_000; t < 39_000; t += 1_000) {
      at(t);
      expect(await sbc1.beat("isp1")).toMatchObject({ activeUplink: "isp2" });
    }
    await runDurableObjectAlarm(stubFor("fo-pin-down"));
    expect(await status("fo-pin-down")).toMatchObject({ activeUplink: "isp2", mode: "override" });
    at(39_000);
    expect(await sbc1.beat("isp1")).toMatchObject({ activeUplink: "isp1" });
    expect((await switches("fo-pin-down")).slice(-2)).toEqual([
      "override: isp1 → isp2 (generation 2)",
      "failover: isp2 → isp1 (generation 3)",
    ]);
  });
});
