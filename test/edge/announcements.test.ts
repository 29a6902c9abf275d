// The transitions people are told about (notifications feed on these events): a site going
// offline and back, an agent going stale and back, a tunnel restart that failed; and refused
// heartbeats, which the timeline shows.
import { evictDurableObject, runDurableObjectAlarm } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { call, createSite, edgeClock, events, stubFor, TestAgent, twoUplinks } from "./support.ts";

const at = edgeClock(Date.UTC(2026, 10, 24, 12, 0, 0));

const kinds = async (site: string, wanted: string[]) =>
  (await events(site))
    .filter((e) => wanted.includes(e.kind))
    .map((e) => `${e.kind}: ${e.message}`)
    .reverse();

async function probes(site: string) {
  return [
    await TestAgent.enroll(site, "sbc1", "probe", { uplink: "isp1" }),
    await TestAgent.enroll(site, "sbc2", "probe", { uplink: "isp2" }),
  ] as const;
}

describe("announced transitions", () => {
  it("a site goes offline when every uplink falls silent, and comes back online once", async () => {
    await createSite("ann-offline");
    const [sbc1, sbc2] = await probes("ann-offline");
    for (let t = 0; t < 5_000; t += 1_000) at(t), await sbc1.beat("isp1"), await sbc2.beat("isp2");
    at(9_000); // both silent for longer than downAfterMs: the alarm judges, no message needed
    expect(await runDurableObjectAlarm(stubFor("ann-offline"))).toBe(true);
    at(12_000);
    await sbc1.beat("isp1");
    expect(await kinds("ann-offline", ["site-offline", "site-online"])).toEqual([
      "site-offline: site offline: no heartbeat arrives through any uplink (routes are left as they are)",
      "site-online: site back online",
    ]);
  });

  it("an agent not heard for twice downAfterMs is stale, once; heard again, it is back; a wake-up alone marks nobody", async () => {
    await createSite("ann-stale");
    const [sbc1, sbc2] = await probes("ann-stale");
    const srv1 = await TestAgent.enroll("ann-stale", "srv1", "server");
    at(0);
    await srv1.beat("isp1");
    for (let t = 0; t <= 12_000; t += 1_000) at(t), await sbc1.beat("isp1"), await sbc2.beat("isp2");
    expect(await kinds("ann-stale", ["agent-stale", "agent-back"])).toEqual(["agent-stale: srv1 not heard for 6 s"]);

    // A restart forgets nothing and invents nothing: srv1 is still stale, sbc1/sbc2 are not.
    await evictDurableObject(stubFor("ann-stale"));
    for (let t = 13_000; t <= 25_000; t += 1_000) at(t), await sbc1.beat("isp1"), await sbc2.beat("isp2");
    at(26_000);
    await srv1.beat("isp2");
    expect(await kinds("ann-stale", ["agent-stale", "agent-back"])).toEqual([
      "agent-stale: srv1 not heard for 6 s",
      "agent-back: srv1 is heard again",
    ]);
  });

  it("an error from the elected restarter after it applied the switch is a failed tunnel restart", async () => {
    await createSite("ann-tunnel", twoUplinks({}, { tunnels: { restart: "cluster" } }));
    const [sbc1, sbc2] = await probes("ann-tunnel");
    const srv1 = await TestAgent.enroll("ann-tunnel", "srv1", "server", { tunnelRestarter: true });
    for (let t = 0; t < 5_000; t += 1_000)
      at(t), await sbc1.beat("isp1"), await sbc2.beat("isp2"), await srv1.beat("isp2");
    // isp1 falls silent: failover to isp2 (generation 2).
    for (let t = 5_000; t < 10_000; t += 1_000) at(t), await sbc2.beat("isp2"), await srv1.beat("isp2");
    srv1.appliedGeneration = 2;
    at(10_000);
    const d = await srv1.beat("isp2");
    expect(d).toMatchObject({ generation: 2, activeUplink: "isp2" });
    at(10_500);
    expect(await srv1.beat("isp2")).toMatchObject({ restartTunnels: true });
    at(11_000);
    await srv1.beat("isp2", { extra: { lastError: "docker: command not found" } });
    expect(await kinds("ann-tunnel", ["tunnel-restart-failed", "agent-error"])).toEqual([
      "tunnel-restart-failed: srv1 could not restart the tunnels for generation 2: docker: command not found",
    ]);
  });

  it("a rejected heartbeat of an enrolled agent is on the timeline once per reason, not per message", async () => {
    await createSite("ann-rejected");
    const [sbc1] = await probes("ann-rejected");
    for (let i = 0; i < 3; i++)
      expect((await sbc1.postRaw(sbc1.heartbeatBody("isp1"), { sig: "A".repeat(43) })).status).toBe(401);
    expect((await sbc1.postRaw(sbc1.heartbeatBody("isp1"), { ts: Date.now() - 120_000 })).status).toBe(401);
    const stranger = await call("POST", "/v1/sites/ann-rejected/heartbeat", "{}", null, {
      "x-wanwatch-agent": "nobody",
      "x-wanwatch-ts": String(Date.now()),
      "x-wanwatch-sig": "A".repeat(43),
    });
    expect(stranger.status).toBe(401);
    expect(
      (await kinds("ann-rejected", ["heartbeat-rejected"])).map((l) => l.split(":").slice(0, 3).join(":")),
    ).toEqual([
      "heartbeat-rejected: sbc1: heartbeat rejected (bad_signature)",
      "heartbeat-rejected: sbc1: heartbeat rejected (stale_timestamp)",
    ]);
  });
});
