import { runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { expect, it } from "vitest";
import { TestAgent, createSite, edgeClock, events, stubFor, twoUplinks } from "./support.ts";

// In the future: alarms fire only when the test runs them, so every attempt is one the test made.
const t0 = Date.UTC(2031, 10, 27, 12, 0, 0);
const at = edgeClock(t0);

const outbox = (site: string) =>
  runInDurableObject(stubFor(site), (_i, state) =>
    state.storage.sql
      .exec<{ id: number; attempts: number; next_at: number }>(`SELECT id, attempts, next_at FROM outbox ORDER BY id`)
      .toArray(),
  );

it("retries a notification 5 s after the first attempt, ×3 each time up to an hour, and gives up after 9 attempts", async () => {
  // Nothing listens on the discard port: every send fails at once, as a receiver that is down.
  await createSite("notify-sched", twoUplinks({}, { notify: [{ kind: "webhook", url: "http://127.0.0.1:9/hook" }] }));
  const sbc1 = await TestAgent.enroll("notify-sched", "sbc1", "probe", { uplink: "isp1" });
  const sbc2 = await TestAgent.enroll("notify-sched", "sbc2", "probe", { uplink: "isp2" });
  for (let t = 0; t < 5_000; t += 1_000) {
    at(t);
    await sbc1.beat("isp1");
    await sbc2.beat("isp2");
  }
  at(8_000);
  await sbc2.beat("isp2"); // isp1 is down: a notification is queued
  const [first] = await outbox("notify-sched");
  expect(first).toMatchObject({ attempts: 0, next_at: t0 + 8_000 });
  const delays: number[] = [];
  for (let attempt = 1; attempt <= 9; attempt++) {
    const row = (await outbox("notify-sched")).find((r) => r.id === first!.id)!;
    at(row.next_at - t0);
    expect(await runDurableObjectAlarm(stubFor("notify-sched"))).toBe(true);
    const next = (await outbox("notify-sched")).find((r) => r.id === first!.id);
    if (attempt === 9) {
      expect(next).toBeUndefined();
      break;
    }
    expect(next!.attempts).toBe(attempt);
    delays.push(next!.next_at - row.next_at);
  }
  // Each delay is its ceiling less up to 20 % jitter.
  const ceilings = [5_000, 15_000, 45_000, 135_000, 405_000, 1_215_000, 3_600_000, 3_600_000];
  expect(delays).toHaveLength(ceilings.length);
  delays.forEach((d, i) => {
    expect(d, `retry ${i + 1}`).toBeLessThanOrEqual(ceilings[i]!);
    expect(d, `retry ${i + 1}`).toBeGreaterThanOrEqual(0.8 * ceilings[i]!);
  });
  const failed = (await events("notify-sched", 1_000)).filter((e) => e.kind === "notify-failed");
  expect(failed.map((e) => e.data)).toContainEqual(
    expect.objectContaining({ trigger: "uplink-down", attempts: 9, delivered: false }),
  );
  expect(failed.find((e) => e.data.trigger === "uplink-down")!.message).toMatch(
    /^could not notify webhook \(127\.0\.0\.1:9\) of uplink-down: could not connect \(\w+\), gave up after 9 attempts$/,
  );
});
