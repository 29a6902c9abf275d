import { evictDurableObject, runDurableObjectAlarm } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import type { SiteConfigInput } from "#shared";
import {
  call,
  createSite,
  edgeClock,
  events,
  REFUSING,
  status,
  storedRows,
  stubFor,
  TestAgent,
  twoUplinks,
} from "./support.ts";

const T0 = Date.UTC(2026, 11, 3, 12, 0, 0);
const at = edgeClock(T0);
const MB = 1_000_000;
/** Nothing listens on port 9 of this machine: notifications stay queued, which is what is checked. */

const cappedSite = (metered: unknown = { capMB: 10, resetDay: 1 }, policy = {}, extra = {}): SiteConfigInput =>
  twoUplinks(policy, {
    uplinks: [
      { id: "isp1", priority: 1, name: "Fiber" },
      { id: "isp2", priority: 2, name: "LTE", metered } as SiteConfigInput["uplinks"][number],
    ],
    ...extra,
  });

/** A heartbeat through `via` carrying the host's isp2 interface counter (MB received; none sent). */
const report = (a: TestAgent, via: string, counter: string, mb: number, fiberMb = 0) =>
  a.beat(via, {
    extra: {
      uplinkBytes: [
        { uplink: "isp1", counter: "boot-a:2", rx: fiberMb * MB, tx: 0 },
        { uplink: "isp2", counter, rx: Math.round(mb * MB), tx: 0 },
      ],
    },
  });

const isp2Use = async (site: string) => (await status(site)).uplinks.find((u) => u.id === "isp2")!.dataUse;
const capEvents = async (site: string) => (await events(site)).filter((e) => e.kind === "data-cap").reverse();

describe("a data cap on a metered uplink", () => {
  it("is validated field by field; metered: true and configs without it stay valid", async () => {
    const put = (config: unknown) => call("PUT", "/v1/sites/cap-cfg", config);
    const issues = async (metered: unknown) => (await put(cappedSite(metered))).json.error.issues;
    expect((await put(cappedSite({ capMB: 0 }))).status).toBe(400);
    expect(await issues({ capMB: 0 })).toEqual([
      { path: "uplinks[1].metered.capMB", message: expect.stringContaining(">=1") },
    ]);
    expect(await issues({ capMB: 10_000, resetDay: 31 })).toEqual([
      { path: "uplinks[1].metered.resetDay", message: expect.stringContaining("<=28") },
    ]);
    expect(await issues({ capMB: 10_000, day: 3 })).toEqual([
      { path: "uplinks[1].metered.day", message: 'unknown field "day"' },
    ]);
    expect(await issues("yes")).toEqual([
      { path: "uplinks[1].metered", message: "must be true, false or { capMB, resetDay }" },
    ]);
    expect((await put(cappedSite(true))).status).toBe(200);
    expect((await put(twoUplinks())).status).toBe(200);
    expect((await put(cappedSite({ capMB: 10_000 }))).status).toBe(200);
    expect((await call("GET", "/v1/sites/cap-cfg")).json.uplinks[1].metered).toEqual({ capMB: 10_000, resetDay: 1 });
    expect((await isp2Use("cap-cfg"))!).toMatchObject({ usedMB: 0, capMB: 10_000, percent: 0 });
  });

  it("sums this period's bytes over the site's hosts, across a reboot, and announces 75 % and 95 % once each", async () => {
    await createSite("cap-sum", cappedSite(undefined, {}, { notify: [{ kind: "webhook", url: REFUSING }] }));
    const srv1 = await TestAgent.enroll("cap-sum", "srv1", "server");
    const sbc2 = await TestAgent.enroll("cap-sum", "sbc2", "probe", { uplink: "isp2" });
    // The edge asks for the counters.
    const hello = await srv1.postRaw(srv1.heartbeatBody("isp1"));
    expect(hello.json.accepts).toContain("uplinkBytes");

    // First reports are baselines: what the hosts moved before counting is not this site's to count.
    await report(srv1, "isp1", "boot-a:3", 700);
    await report(sbc2, "isp2", "boot-b:2", 50);
    expect(await isp2Use("cap-sum")).toMatchObject({ usedMB: 0, capMB: 10, percent: 0 });

    await report(srv1, "isp1", "boot-a:3", 705, 999);
    expect(await isp2Use("cap-sum")).toMatchObject({ usedMB: 5, percent: 50 });
    expect(await capEvents("cap-sum")).toEqual([]);

    await report(sbc2, "isp2", "boot-b:2", 53);
    expect(await isp2Use("cap-sum")).toMatchObject({ usedMB: 8, percent: 80 });
    // srv1 rebooted: its counter started again from zero, and all 1.5 MB of it are new.
    await report(srv1, "isp1", "boot-c:3", 1.5);
    await report(srv1, "isp1", "boot-c:3", 1.5);
    expect(await isp2Use("cap-sum")).toMatchObject({ usedMB: 9.5, percent: 95 });
    await report(sbc2, "isp2", "boot-b:2", 55);

    const s = await status("cap-sum");
    expect(s.uplinks.find((u) => u.id === "isp2")!.dataUse).toEqual({
      usedMB: 11.5,
      capMB: 10,
      percent: 115,
      periodStart: Date.UTC(2026, 11, 1),
      resetsAt: Date.UTC(2027, 0, 1),
    });
    expect(s.uplinks.find((u) => u.id === "isp1")!.dataUse).toBeUndefined();
    const announced = await capEvents("cap-sum");
    expect(announced.map((e) => e.data)).toEqual([
      { uplink: "isp2", percent: 75, usedMB: 8, capMB: 10, resetsAt: Date.UTC(2027, 0, 1) },
      { uplink: "isp2", percent: 95, usedMB: 9.5, capMB: 10, resetsAt: Date.UTC(2027, 0, 1) },
    ]);
    expect(announced[1]!.message).toBe(
      "isp2 (LTE) has used 95 % of its 10 MB data cap: 9.5 MB this period, which ends 2027-01-01 00:00 UTC",
    );
    const metrics = (await call("GET", "/v1/sites/cap-sum/metrics")).text.split("\n");
    expect(metrics).toContain('wanwatch_uplink_data_used_megabytes{site="cap-sum",uplink="isp2"} 11.5');
    expect(metrics).toContain('wanwatch_uplink_data_cap_megabytes{site="cap-sum",uplink="isp2"} 10');
    // Each went to the site's notification targets (one topic per uplink: the newer waits in place of the older).
    expect(s.notify.pending).toBe(1);
    // Written with their events: a wake announces neither again.
    await evictDurableObject(stubFor("cap-sum"));
    await report(sbc2, "isp2", "boot-b:2", 56);
    expect(await isp2Use("cap-sum")).toMatchObject({ usedMB: 12.5 });
    expect(await capEvents("cap-sum")).toHaveLength(2);
  });

  it("starts from zero on resetDay (00:00 UTC) and announces again in the new period", async () => {
    at(Date.UTC(2026, 11, 4, 23, 0) - T0);
    await createSite("cap-month", cappedSite({ capMB: 10, resetDay: 5 }));
    const srv1 = await TestAgent.enroll("cap-month", "srv1", "server");
    await report(srv1, "isp1", "boot-a:3", 100);
    await report(srv1, "isp1", "boot-a:3", 108);
    expect(await isp2Use("cap-month")).toMatchObject({ usedMB: 8, periodStart: Date.UTC(2026, 10, 5) });
    at(Date.UTC(2026, 11, 5, 0, 1) - T0);
    expect(await isp2Use("cap-month")).toMatchObject({ usedMB: 0, periodStart: Date.UTC(2026, 11, 5) });
    await report(srv1, "isp1", "boot-a:3", 116);
    expect(await isp2Use("cap-month")).toMatchObject({ usedMB: 8, resetsAt: Date.UTC(2027, 0, 5) });
    expect((await capEvents("cap-month")).map((e) => [e.data.percent, e.data.resetsAt])).toEqual([
      [75, Date.UTC(2026, 11, 5)],
      [75, Date.UTC(2027, 0, 5)],
    ]);
  });

  it("loses nothing to an eviction: the next report is measured from the counters stored with the use", async () => {
    await createSite("cap-evict", cappedSite({ capMB: 10_000 }));
    const srv1 = await TestAgent.enroll("cap-evict", "srv1", "server");
    await report(srv1, "isp1", "boot-a:3", 100);
    at(60_000);
    await report(srv1, "isp1", "boot-a:3", 102);
    await evictDurableObject(stubFor("cap-evict"));
    at(120_000);
    await report(srv1, "isp1", "boot-a:3", 103);
    expect(await isp2Use("cap-evict")).toMatchObject({ usedMB: 3 });
    // The checkpoint writes use and counters together.
    at(9 * 60_000);
    await runDurableObjectAlarm(stubFor("cap-evict"));
    const rows = await storedRows("cap-evict");
    expect(rows.data_use).toEqual([
      { uplink: "isp2", period_start: Date.UTC(2026, 11, 1), bytes: 3 * MB, notified: 0 },
    ]);
    expect(rows.data_counters).toEqual([{ agent: "srv1", uplink: "isp2", counter: "boot-a:3", rx: 103 * MB, tx: 0 }]);
    // A revoked agent's counters go; the use it measured stays counted.
    expect((await call("DELETE", "/v1/sites/cap-evict/agents/srv1")).status).toBe(200);
    await runDurableObjectAlarm(stubFor("cap-evict"));
    const after = await storedRows("cap-evict");
    expect(after.data_counters).toEqual([]);
    expect(after.data_use).toEqual(rows.data_use);
  });
});

describe("a metered uplink past 95 % of its cap", () => {
  /** isp1 cut at 10 s, the site on isp2, isp2's use brought to `mb` MB, isp1 back at 20 s: what is active at 22 s. */
  async function activeAfterReturn(site: string, mb: number) {
    await createSite(site, cappedSite({ capMB: 10 }, { failbackAfterMs: 60_000, minDwellMs: 0 }));
    const sbc1 = await TestAgent.enroll(site, "sbc1", "probe", { uplink: "isp1" });
    const sbc2 = await TestAgent.enroll(site, "sbc2", "probe", { uplink: "isp2" });
    await report(sbc2, "isp2", "boot-b:2", 0);
    for (let t = 0; t < 20_000; t += 1_000) {
      at(t);
      if (t <= 10_000) await sbc1.beat("isp1");
      await (t === 15_000 ? report(sbc2, "isp2", "boot-b:2", mb) : sbc2.beat("isp2"));
    }
    expect((await status(site)).activeUplink).toBe("isp2");
    let active = "";
    for (let t = 20_000; t <= 22_000; t += 1_000) {
      at(t);
      active = (await sbc1.beat("isp1"))!.activeUplink;
      await sbc2.beat("isp2");
    }
    return active;
  }

  it("is left as soon as the better uplink is back, without the failback hold-down", async () => {
    expect(await activeAfterReturn("cap-over", 9.6)).toBe("isp1");
  });

  it("below it, the hold-down holds", async () => {
    expect(await activeAfterReturn("cap-under", 9.4)).toBe("isp2");
  });
});
