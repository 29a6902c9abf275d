// Which recorded events people hear about, and how each kind of target wants to hear it: pure.
import type { NotifyTarget, SiteEvent } from "#shared";
import { THRESHOLDS } from "../engine/data-use.ts";
import type { EventData, EventKind } from "../site/events.ts";

export type Trigger =
  | "failover"
  | "failback"
  | "switch"
  | "uplink-down"
  | "uplink-up"
  | "uplink-degraded"
  | "uplink-healthy"
  | "site-offline"
  | "site-online"
  | "agent-stale"
  | "agent-back"
  | "agent-cut-off"
  | "agent-path-back"
  | "tunnel-restart-failed"
  | "data-cap"
  | "ipv6-silent"
  | "ipv6-back"
  /** `wanwatch site notify --test`: never from an event. */
  | "test";

/** What a notification is about: a newer one on the same topic replaces one not yet delivered. */
export interface Subject {
  trigger: Trigger;
  topic: string;
  severity: "bad" | "good" | "info";
}

/** A field of an event's data as text; `K` names the kind that carries it, so a renamed field fails to compile. */
const d = <K extends EventKind>(e: SiteEvent, k: keyof EventData[K] & string) => String(e.data?.[k] ?? "");

/** The notification an event deserves, if any (kinds checked against the event map). */
export function subjectOf(e: SiteEvent): Subject | null {
  switch (e.kind) {
    case "switch" satisfies EventKind: {
      const reason = d<"switch">(e, "reason");
      if (reason === "initial") return null;
      // Leaving a degraded uplink is a failover in the user's words, as is leaving a dead one.
      const trigger =
        reason === "failover" || reason === "degraded" ? "failover" : reason === "failback" ? "failback" : "switch";
      return {
        trigger,
        topic: "active-uplink",
        severity: trigger === "failover" ? "bad" : trigger === "failback" ? "good" : "info",
      };
    }
    case "uplink" satisfies EventKind:
      if (d<"uplink">(e, "to") === "down")
        return { trigger: "uplink-down", topic: `uplink:${d<"uplink">(e, "uplink")}`, severity: "bad" };
      if (d<"uplink">(e, "to") === "up" && d<"uplink">(e, "from") === "down")
        return { trigger: "uplink-up", topic: `uplink:${d<"uplink">(e, "uplink")}`, severity: "good" };
      return null;
    case "uplink-quality" satisfies EventKind:
      return e.data?.degraded
        ? { trigger: "uplink-degraded", topic: `uplink:${d<"uplink-quality">(e, "uplink")}`, severity: "bad" }
        : { trigger: "uplink-healthy", topic: `uplink:${d<"uplink-quality">(e, "uplink")}`, severity: "good" };
    case "site-offline" satisfies EventKind:
      return { trigger: "site-offline", topic: "site", severity: "bad" };
    case "site-online" satisfies EventKind:
      return { trigger: "site-online", topic: "site", severity: "good" };
    case "agent-stale" satisfies EventKind:
      return { trigger: "agent-stale", topic: `agent:${d<"agent-stale">(e, "agent")}`, severity: "bad" };
    case "agent-back" satisfies EventKind:
      return { trigger: "agent-back", topic: `agent:${d<"agent-back">(e, "agent")}`, severity: "good" };
    case "agent-cut-off" satisfies EventKind:
      return {
        trigger: "agent-cut-off",
        topic: `agent:${d<"agent-cut-off">(e, "agent")}:${d<"agent-cut-off">(e, "uplink")}`,
        severity: "bad",
      };
    case "agent-path-back" satisfies EventKind:
      return {
        trigger: "agent-path-back",
        topic: `agent:${d<"agent-path-back">(e, "agent")}:${d<"agent-path-back">(e, "uplink")}`,
        severity: "good",
      };
    case "tunnel-restart-failed" satisfies EventKind:
    case "tunnel-no-restarter" satisfies EventKind:
      return { trigger: "tunnel-restart-failed", topic: "tunnels", severity: "bad" };
    case "data-cap" satisfies EventKind:
      return {
        trigger: "data-cap",
        topic: `data-cap:${d<"data-cap">(e, "uplink")}`,
        severity: Number(d<"data-cap">(e, "percent")) >= THRESHOLDS[1] ? "bad" : "info",
      };
    // Only IPv6 through the uplink went quiet (IPv4 still heard): nothing switches, but IPv6 users of the site may notice.
    case "ipv6-silent" satisfies EventKind:
      return { trigger: "ipv6-silent", topic: `ipv6:${d<"ipv6-silent">(e, "uplink")}`, severity: "bad" };
    case "ipv6-back" satisfies EventKind:
      return { trigger: "ipv6-back", topic: `ipv6:${d<"ipv6-back">(e, "uplink")}`, severity: "good" };
    default:
      return null;
  }
}

/** A notification to queue: for one target, on one topic. */
export interface Queued {
  target: NotifyTarget;
  topic: string;
  event: SiteEvent;
}

/** Every target hears of every event that deserves a notification. */
export function notificationsFor(events: readonly SiteEvent[], targets: readonly NotifyTarget[]): Queued[] {
  return events.flatMap((event) => {
    const subject = subjectOf(event);
    return subject ? targets.map((target) => ({ target, topic: subject.topic, event })) : [];
  });
}

/** Only the kind and host of a target: its URL may carry a secret (Slack, Discord, ntfy topics). */
export function describeTarget(t: NotifyTarget): string {
  return `${t.kind} (${hostOf(t)})`;
}

export const hostOf = (t: NotifyTarget) => new URL(t.url).host;

export interface Delivery {
  /** Stable across retries, so a receiver can drop a duplicate. */
  id: string;
  site: string;
  subject: Subject;
  event: SiteEvent;
  /** Earlier changes on the same topic that this one replaced before they were delivered. */
  replaced: number;
}

export interface OutgoingRequest {
  headers: Record<string, string>;
  body: string;
}

function line(n: Delivery): string {
  return `wanwatch ${n.site}: ${n.event.message}${n.replaced ? ` (after ${n.replaced} earlier change${n.replaced > 1 ? "s" : ""} on this)` : ""}`;
}

/** Slack reads `<…>` as links and mentions: show them as text. */
const slackText = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");

export function request(kind: NotifyTarget["kind"], n: Delivery): OutgoingRequest {
  const json = (body: unknown): OutgoingRequest => ({
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  switch (kind) {
    case "webhook":
      return json({
        id: n.id,
        site: n.site,
        trigger: n.subject.trigger,
        severity: n.subject.severity,
        message: n.event.message,
        at: n.event.at,
        event: n.event,
        replaced: n.replaced,
      });
    case "slack":
      return json({ text: slackText(line(n)) });
    case "discord":
      // No pings: an uplink or agent name must not become @everyone.
      return json({ content: line(n).slice(0, 2000), allowed_mentions: { parse: [] } });
    case "ntfy":
      return {
        headers: {
          "content-type": "text/plain; charset=utf-8",
          // Header values must be plain ASCII; site ids are.
          title: `wanwatch ${n.site}: ${n.subject.trigger}`,
          tags:
            n.subject.severity === "bad"
              ? "warning"
              : n.subject.severity === "good"
                ? "white_check_mark"
                : "information_source",
          priority: n.subject.severity === "bad" ? "4" : "3",
        },
        body: line(n),
      };
  }
}

/** How a send went, and whether trying again could help. */
export type SendOutcome = { ok: true; status: number } | { ok: false; error: string; retry: boolean; status?: number };

export function outcomeOf(status: number): SendOutcome {
  if (status >= 200 && status < 300) return { ok: true, status };
  // A receiver that is overloaded, rate-limiting or down may take it later; any other 4xx will not.
  return { ok: false, error: `HTTP ${status}`, retry: status >= 500 || status === 408 || status === 429, status };
}
