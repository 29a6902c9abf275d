// Notifications an operator can trust: the first failed attempt of a send is on the timeline at
// once (not after hours of retries), pending sends show in status and metrics, and a test
// notification reaches every target on demand. No receiver answers inside workerd here: the
// targets refuse the connection; delivery to a real receiver is tested in test/e2e/notify.test.ts.
import { runDurableObjectAlarm } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { NotifyTestResponse } from "#shared";
import {
  REFUSING,
  VIEWER,
  call,
  createSite,
  edgeClock,
  events,
  status,
  storedRows,
  stubFor,
  twoUplinks,
} from "./support.ts";

const at = edgeClock(Date.UTC(2026, 11, 3, 6, 0, 0));
/** Nothing listens on port 9 of this machine: the connection is refused at once. */

describe("a notification target that cannot be reached", () => {
  it("is on the timeline after the first failed attempt, once per send, and in the status and metrics", async () => {
    await createSite(
      "nt-fail",
      twoUplinks({}, { notify: [{ kind: "webhook", url: REFUSING }], tunnels: { restart: "none" } }),
    );
    at(1_000);
    await call("POST", "/v1/sites/nt-fail/override", { uplink: "isp2", forSeconds: 600, reason: "maintenance" });
    expect((await status("nt-fail")).notify).toMatchObject({
      pending: 1,
      targets: [{ target: "webhook (127.0.0.1:9)", pending: 1, retrying: 0, lastError: null }],
    });

    expect(await runDurableObjectAlarm(stubFor("nt-fail"))).toBe(true);
    const retrying = (await events("nt-fail")).filter((e) => e.kind === "notify-retrying");
    expect(retrying).toHaveLength(1);
    expect(retrying[0]!.message).toMatch(
      /^could not notify webhook \(127\.0\.0\.1:9\) of switch: could not connect \(\w+\); retrying \(next attempt at \S+Z, up to 9 attempts\)$/,
    );
    expect(retrying[0]!.data).toMatchObject({ target: "webhook (127.0.0.1:9)", trigger: "switch", attempts: 1 });

    const s = await status("nt-fail");
    const target = s.notify.targets[0]!;
    expect(target).toMatchObject({
      target: "webhook (127.0.0.1:9)",
      kind: "webhook",
      host: "127.0.0.1:9",
      pending: 1,
      retrying: 1,
      delivered: 0,
      failed: 0,
      failedAttempts: 1,
      lastErrorAt: s.now,
    });
    expect(target.lastError).toMatch(/^could not connect/);
    expect(target.nextAttemptAt).toBe(retrying[0]!.data.nextAttemptAt);
    expect(target.nextAttemptAt).toBeGreaterThan(s.now);
    expect(s.notify.nextAttemptAt).toBe(target.nextAttemptAt);

    // A retry that fails again adds to the counts, not to the timeline.
    at(60_000);
    await runDurableObjectAlarm(stubFor("nt-fail"));
    expect((await events("nt-fail")).filter((e) => e.kind === "notify-retrying")).toHaveLength(1);
    expect((await status("nt-fail")).notify.targets[0]).toMatchObject({ pending: 1, retrying: 1, failedAttempts: 2 });

    const metrics = (await call("GET", "/v1/sites/nt-fail/metrics", undefined, VIEWER)).text.split("\n");
    const labels = 'site="nt-fail",target="webhook (127.0.0.1:9)",kind="webhook",host="127.0.0.1:9"';
    expect(metrics).toContain(`wanwatch_notifications_pending{${labels}} 1`);
    expect(metrics).toContain(`wanwatch_notifications_retrying{${labels}} 1`);
    expect(metrics).toContain(`wanwatch_notification_attempts_failed_total{${labels}} 2`);
    expect(metrics).toContain(`wanwatch_notifications_failed_total{${labels}} 0`);
    expect(metrics.some((l) => l.startsWith(`wanwatch_notification_next_attempt_timestamp_seconds{${labels}} `))).toBe(
      true,
    );
    for (const text of [
      JSON.stringify(await status("nt-fail")),
      JSON.stringify(await events("nt-fail")),
      metrics.join("\n"),
    ])
      expect(text).not.toContain("secret-path");
  });
});

describe("POST /v1/sites/:site/notify/test", () => {
  const test = (site: string, token?: string | null) => call("POST", `/v1/sites/${site}/notify/test`, undefined, token);

  it("tries every target now and answers per target by kind and host; records one event and nothing else", async () => {
    await createSite(
      "nt-test",
      twoUplinks(
        {},
        {
          notify: [
            { kind: "webhook", url: REFUSING },
            { kind: "slack", url: "http://127.0.0.1:9/services/T0/B0/XXXX" },
          ],
        },
      ),
    );
    at(0);
    const before = await storedRows("nt-test");
    const r = await test("nt-test");
    expect(r.status).toBe(200);
    const body = NotifyTestResponse.parse(r.json);
    expect(body.results.map(({ ms: _, error: __, ...rest }) => rest)).toEqual([
      { target: "webhook (127.0.0.1:9)", kind: "webhook", host: "127.0.0.1:9", ok: false, status: null },
      { target: "slack (127.0.0.1:9)", kind: "slack", host: "127.0.0.1:9", ok: false, status: null },
    ]);
    for (const x of body.results) expect(x.error).toMatch(/^could not connect/);
    expect(r.text).not.toContain("secret-path");
    expect(r.text).not.toContain("XXXX");

    const after = await storedRows("nt-test");
    expect({ ...after, events: [], sqlite_sequence: [] }).toEqual({ ...before, events: [], sqlite_sequence: [] });
    const added = after.events!.slice(before.events!.length) as { kind: string; message: string }[];
    expect(added.map((e) => e.kind)).toEqual(["notify-test"]);
    expect(added[0]!.message).toMatch(
      /^test notification: 0 of 2 targets answered \(webhook \(127\.0\.0\.1:9\): could not connect \(\w+\) in \d+ ms; slack/,
    );
  });

  it("is refused within 30 s of the last test, saying when to try again, and allowed after", async () => {
    await createSite("nt-rate", twoUplinks({}, { notify: [{ kind: "webhook", url: REFUSING }] }));
    at(0);
    expect((await test("nt-rate")).status).toBe(200);
    at(10_000);
    const again = await test("nt-rate");
    expect(again.status).toBe(429);
    expect(again.json.error).toEqual({
      code: "rate_limited",
      message: "a test notification was sent less than 30 s ago: try again in 20 s",
    });
    expect(again.headers.get("retry-after")).toBe("20");
    at(30_000);
    expect((await test("nt-rate")).status).toBe(200);
    expect((await events("nt-rate")).filter((e) => e.kind === "notify-test")).toHaveLength(2);
  });

  it("needs the admin token, and a site with targets", async () => {
    await createSite("nt-auth", twoUplinks({}, { notify: [{ kind: "webhook", url: REFUSING }] }));
    const before = await storedRows("nt-auth");
    expect((await test("nt-auth", VIEWER)).status).toBe(403);
    expect((await test("nt-auth", null)).status).toBe(401);
    expect(await storedRows("nt-auth")).toEqual(before);

    await createSite("nt-none");
    const none = await test("nt-none");
    expect(none.status).toBe(409);
    expect(none.json.error).toEqual({
      code: "no_notify_targets",
      message:
        'site "nt-none" has no notify targets: add them under notify: in the site file, then run wanwatch site apply FILE --site nt-none',
    });
  });
});
