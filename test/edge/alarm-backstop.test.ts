import { runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { TestAgent, createSite, edgeClock, events, status, stubFor, twoUplinks } from "./support.ts";

// In the future: alarms fire only when the test runs them, so the moment of each one is seen.
const t0 = Date.UTC(2031, 10, 26, 12, 0, 0);
const at = edgeClock(t0);

describe("the alarm backstop", () => {
  // The bound the docs state: a site silent on every uplink is judged at most min(4 × downAfterMs, 60 s)
  // after its last deadline, by the alarm alone (no message arrives to do it).
  for (const [downAfterMs, boundMs] of [
    [3_000, 12_000],
    [30_000, 60_000],
  ] as const)
    it(`judges a site silent on every uplink within downAfterMs + ${boundMs / 1000} s (downAfterMs ${downAfterMs / 1000} s)`, async () => {
      const site = `backstop-${downAfterMs}`;
      await createSite(site, twoUplinks({ downAfterMs, heartbeatMs: 1_000 }));
      const sbc1 = await TestAgent.enroll(site, "sbc1", "probe", { uplink: "isp1" });
      const sbc2 = await TestAgent.enroll(site, "sbc2", "probe", { uplink: "isp2" });
      const alarmAt = () => runInDurableObject(stubFor(site), (_i, state) => state.storage.getAlarm());
      let last = 0;
      for (let t = 0; t <= 120_000; t += 1_000) {
        at(t);
        await sbc1.beat("isp1");
        await sbc2.beat("isp2");
        last = t0 + t;
        // Steady state: the alarm runs when due and is armed again past the newest deadline.
        const due = await alarmAt();
        if (due !== null && due <= last) await runDurableObjectAlarm(stubFor(site));
      }
      const bound = last + downAfterMs + boundMs;
      // Then silence: only the alarm runs, each time it is due, until the site is judged.
      const offline = async () => (await events(site)).some((e) => e.kind === "site-offline");
      const runs: number[] = [];
      for (let due = await alarmAt(); due !== null && !(await offline()); due = await alarmAt()) {
        expect(due).toBeLessThanOrEqual(bound);
        at(due - t0);
        runs.push(due);
        expect(await runDurableObjectAlarm(stubFor(site))).toBe(true);
      }
      expect(await offline()).toBe(true);
      expect((await status(site)).mode).toBe("offline");
      // Judged by the last of those runs, in the window the bound allows.
      expect(runs.at(-1)).toBeGreaterThanOrEqual(last + downAfterMs);
      expect(runs.at(-1)).toBeLessThanOrEqual(bound);
    });
});
