import { describe, expect, it } from "vitest";
import type { SiteEvent } from "#shared";
import { describeTarget, outcomeOf, request, subjectOf, type Delivery } from "../../worker/src/notify/notification.ts";

const ev = (kind: string, data: Record<string, unknown>, message = "m"): SiteEvent => ({
  seq: 7,
  at: 1_000,
  kind,
  message,
  data,
});

describe("which events notify", () => {
  it("maps transitions to triggers and topics, and ignores the rest", () => {
    expect(subjectOf(ev("switch", { reason: "failover" }))).toEqual({
      trigger: "failover",
      topic: "active-uplink",
      severity: "bad",
    });
    expect(subjectOf(ev("switch", { reason: "failback" }))?.trigger).toBe("failback");
    expect(subjectOf(ev("switch", { reason: "override" }))?.trigger).toBe("switch");
    expect(subjectOf(ev("switch", { reason: "initial" }))).toBeNull();
    expect(subjectOf(ev("uplink", { uplink: "isp1", from: "up", to: "down" }))).toEqual({
      trigger: "uplink-down",
      topic: "uplink:isp1",
      severity: "bad",
    });
    expect(subjectOf(ev("uplink", { uplink: "isp1", from: "down", to: "up" }))?.trigger).toBe("uplink-up");
    // The first sign of life and the all-silent case are not news by themselves.
    expect(subjectOf(ev("uplink", { uplink: "isp1", from: "unknown", to: "up" }))).toBeNull();
    expect(subjectOf(ev("uplink", { uplink: "isp1", from: "up", to: "unknown" }))).toBeNull();
    expect(subjectOf(ev("site-offline", {}))?.topic).toBe("site");
    expect(subjectOf(ev("agent-stale", { agent: "srv1" }))).toEqual({
      trigger: "agent-stale",
      topic: "agent:srv1",
      severity: "bad",
    });
    expect(subjectOf(ev("agent-back", { agent: "srv1" }))?.topic).toBe("agent:srv1");
    expect(subjectOf(ev("tunnel-restart-failed", { agent: "srv1" }))?.trigger).toBe("tunnel-restart-failed");
    expect(subjectOf(ev("tunnel-no-restarter", {}))?.trigger).toBe("tunnel-restart-failed");
    expect(subjectOf(ev("ipv6-silent", { uplink: "isp2", lastHeardAt: 1 }))).toEqual({
      trigger: "ipv6-silent",
      topic: "ipv6:isp2",
      severity: "bad",
    });
    expect(subjectOf(ev("ipv6-back", { uplink: "isp2", silentForMs: 9 }))).toEqual({
      trigger: "ipv6-back",
      topic: "ipv6:isp2",
      severity: "good",
    });
    for (const kind of ["applied", "notify", "notify-failed", "config", "agent-error", "misrouted"])
      expect(subjectOf(ev(kind, {}))).toBeNull();
  });

  it("names a target by kind and host only, never its secret path", () => {
    expect(describeTarget({ kind: "slack", url: "https://hooks.slack.com/services/T0/B0/SECRET" })).toBe(
      "slack (hooks.slack.com)",
    );
  });
});

describe("message formats", () => {
  const n: Delivery = {
    id: "office:7",
    site: "office",
    subject: { trigger: "failover", topic: "active-uplink", severity: "bad" },
    event: ev("switch", { reason: "failover" }, "failover: isp1 → isp2 <!channel> @everyone"),
    replaced: 2,
  };

  it("webhook: the whole event with a stable id for deduplication", () => {
    const r = request("webhook", n);
    expect(r.headers["content-type"]).toBe("application/json");
    expect(JSON.parse(r.body)).toMatchObject({
      id: "office:7",
      site: "office",
      trigger: "failover",
      severity: "bad",
      replaced: 2,
      event: { seq: 7, kind: "switch" },
    });
  });

  it("slack: text with Slack's control characters escaped", () => {
    const { text } = JSON.parse(request("slack", n).body);
    expect(text).toBe(
      "wanwatch office: failover: isp1 → isp2 &lt;!channel&gt; @everyone (after 2 earlier changes on this)",
    );
  });

  it("discord: content without pings", () => {
    const body = JSON.parse(request("discord", n).body);
    expect(body.allowed_mentions).toEqual({ parse: [] });
    expect(body.content).toContain("failover: isp1 → isp2");
    const long = request("discord", { ...n, event: { ...n.event, message: "x".repeat(5_000) } });
    expect(JSON.parse(long.body).content.length).toBe(2_000);
  });

  it("ntfy: plain text with title, tags and priority headers", () => {
    const r = request("ntfy", n);
    expect(r.body).toContain("failover: isp1 → isp2");
    expect(r.headers).toMatchObject({ title: "wanwatch office: failover", tags: "warning", priority: "4" });
    expect(request("ntfy", { ...n, subject: { ...n.subject, severity: "good" } }).headers.priority).toBe("3");
  });
});

describe("send outcomes", () => {
  it("retries only what a later try could fix", () => {
    expect(outcomeOf(204)).toEqual({ ok: true, status: 204 });
    expect(outcomeOf(503)).toMatchObject({ ok: false, retry: true });
    expect(outcomeOf(429)).toMatchObject({ ok: false, retry: true });
    expect(outcomeOf(408)).toMatchObject({ ok: false, retry: true });
    expect(outcomeOf(404)).toMatchObject({ ok: false, retry: false, error: "HTTP 404" });
    expect(outcomeOf(301)).toMatchObject({ ok: false, retry: false });
  });
});
