// Prometheus text exposition of a site's status.
import type { SiteStatus } from "#shared";

const esc = (v: string) => v.replaceAll("\\", "\\\\").replaceAll('"', '\\"').replaceAll("\n", "\\n");

interface Family {
  name: string;
  help: string;
  type: "gauge" | "counter";
  samples: { labels: Record<string, string>; value: number }[];
}

function render(families: Family[]): string {
  const out: string[] = [];
  for (const f of families) {
    out.push(`# HELP ${f.name} ${f.help}`, `# TYPE ${f.name} ${f.type}`);
    for (const s of f.samples) {
      const labels = Object.entries(s.labels)
        .map(([k, v]) => `${k}="${esc(v)}"`)
        .join(",");
      out.push(`${f.name}${labels ? `{${labels}}` : ""} ${Number.isFinite(s.value) ? s.value : "NaN"}`);
    }
  }
  return `${out.join("\n")}\n`;
}

/** What the site's Durable Object did since it last started, in the units Cloudflare bills. */
export interface ObjectUsage {
  rowsRead: number;
  rowsWritten: number;
  alarmsSet: number;
  alarmRuns: number;
  webSocketMessages: number;
}

const USAGE: [keyof ObjectUsage, string, string][] = [
  ["rowsRead", "wanwatch_edge_sqlite_rows_read_total", "SQLite rows read"],
  [
    "rowsWritten",
    "wanwatch_edge_sqlite_rows_written_total",
    "SQLite rows written (setAlarm is billed as one more row each)",
  ],
  ["alarmsSet", "wanwatch_edge_alarms_set_total", "Alarms scheduled"],
  ["alarmRuns", "wanwatch_edge_alarm_runs_total", "Alarm invocations (each a billed request)"],
  [
    "webSocketMessages",
    "wanwatch_edge_websocket_messages_total",
    "WebSocket messages received (billed 20 to a request)",
  ],
];

type TargetStatus = SiteStatus["notify"]["targets"][number];

/** Sends per notification target, labelled by kind and host (never the URL: it may hold a secret). */
const NOTIFY: [string, Family["type"], string, (t: TargetStatus) => number | null][] = [
  [
    "wanwatch_notifications_pending",
    "gauge",
    "Notifications waiting for the target: due, or failed and waiting for a retry.",
    (t) => t.pending,
  ],
  [
    "wanwatch_notifications_retrying",
    "gauge",
    "Notifications waiting for the target that have failed at least once.",
    (t) => t.retrying,
  ],
  [
    "wanwatch_notification_next_attempt_timestamp_seconds",
    "gauge",
    "Unix time of the next send to the target (absent while nothing waits).",
    (t) => (t.nextAttemptAt === null ? null : t.nextAttemptAt / 1000),
  ],
  ["wanwatch_notifications_delivered_total", "counter", "Notifications the target accepted.", (t) => t.delivered],
  [
    "wanwatch_notifications_failed_total",
    "counter",
    "Notifications given up on (after every retry, or refused for good).",
    (t) => t.failed,
  ],
  [
    "wanwatch_notification_attempts_failed_total",
    "counter",
    "Sends to the target that failed, retried or not.",
    (t) => t.failedAttempts,
  ],
  [
    "wanwatch_notification_last_error_timestamp_seconds",
    "gauge",
    "Unix time of the target's last failed send.",
    (t) => (t.lastErrorAt === null ? null : t.lastErrorAt / 1000),
  ],
];

function notifyFamilies(s: SiteStatus): Family[] {
  return NOTIFY.map(([name, type, help, value]) => ({
    name,
    help,
    type,
    samples: s.notify.targets.flatMap((t) => {
      const v = value(t);
      return v === null ? [] : [{ labels: { site: s.site, target: t.target, kind: t.kind, host: t.host }, value: v }];
    }),
  }));
}

export function renderMetrics(s: SiteStatus, usage: ObjectUsage): string {
  const site = s.site;
  return render([
    {
      name: "wanwatch_uplink_up",
      help: "1 when heartbeats through the uplink keep arriving, 0 when down, -1 when unknown.",
      type: "gauge",
      samples: s.uplinks.map((u) => ({
        labels: { site, uplink: u.id },
        value: u.state === "up" ? 1 : u.state === "down" ? 0 : -1,
      })),
    },
    {
      name: "wanwatch_uplink_active",
      help: "1 for the uplink the site's servers are told to use.",
      type: "gauge",
      samples: s.uplinks.map((u) => ({ labels: { site, uplink: u.id }, value: u.id === s.activeUplink ? 1 : 0 })),
    },
    {
      name: "wanwatch_uplink_rtt_milliseconds",
      help: "Round-trip time to the edge reported by the uplink's probe.",
      type: "gauge",
      samples: s.uplinks
        .filter((u) => u.rttMs !== null)
        .map((u) => ({ labels: { site, uplink: u.id }, value: u.rttMs! })),
    },
    {
      name: "wanwatch_uplink_gateway_rtt_milliseconds",
      help: "Round-trip time from the uplink's probe to its router (absent while the router does not answer).",
      type: "gauge",
      samples: s.uplinks
        .filter((u) => u.gatewayRttMs !== null)
        .map((u) => ({ labels: { site, uplink: u.id }, value: u.gatewayRttMs! })),
    },
    {
      name: "wanwatch_uplink_loss_ratio",
      help: "Share of its probe's TCP handshakes to the edge lost over the last minute.",
      type: "gauge",
      samples: s.uplinks
        .filter((u) => u.lossRatio !== null)
        .map((u) => ({ labels: { site, uplink: u.id }, value: u.lossRatio! })),
    },
    {
      name: "wanwatch_uplink_path_rtt_milliseconds",
      help: "Median of its probe's TCP handshakes to the edge over the last minute.",
      type: "gauge",
      samples: s.uplinks
        .filter((u) => u.pathRttMs !== null)
        .map((u) => ({ labels: { site, uplink: u.id }, value: u.pathRttMs! })),
    },
    {
      name: "wanwatch_uplink_degraded",
      help: "1 while the uplink is up but over the policy's loss or latency threshold.",
      type: "gauge",
      samples: s.uplinks.map((u) => ({ labels: { site, uplink: u.id }, value: u.degraded ? 1 : 0 })),
    },
    {
      name: "wanwatch_uplink_data_used_megabytes",
      help: "A metered uplink's use this period (10^6 bytes), from its hosts' interface counters.",
      type: "gauge",
      samples: s.uplinks.flatMap((u) =>
        u.dataUse ? [{ labels: { site, uplink: u.id }, value: u.dataUse.usedMB }] : [],
      ),
    },
    {
      name: "wanwatch_uplink_data_cap_megabytes",
      help: "A metered uplink's data cap a period (10^6 bytes).",
      type: "gauge",
      samples: s.uplinks.flatMap((u) =>
        u.dataUse?.capMB ? [{ labels: { site, uplink: u.id }, value: u.dataUse.capMB }] : [],
      ),
    },
    {
      name: "wanwatch_switches_total",
      help: "Choices of the active uplink since the site was created (the generation counts each one).",
      type: "counter",
      samples: [{ labels: { site }, value: s.generation }],
    },
    {
      name: "wanwatch_last_switch_timestamp_seconds",
      help: "Unix time of the last switch.",
      type: "gauge",
      samples: s.since === null ? [] : [{ labels: { site }, value: s.since / 1000 }],
    },
    {
      name: "wanwatch_agent_heartbeat_age_seconds",
      help: "Seconds since the agent was last heard through any uplink.",
      type: "gauge",
      samples: s.agents
        .filter((a) => a.lastSeenAt !== null)
        .map((a) => ({ labels: { site, agent: a.id, role: a.role }, value: (s.now - a.lastSeenAt!) / 1000 })),
    },
    {
      name: "wanwatch_agent_clock_offset_seconds",
      help: "Edge time minus the agent's clock: how wrong the host's clock is (the agent signs with corrected time).",
      type: "gauge",
      samples: s.agents
        .filter((a) => a.clockOffsetMs !== null)
        .map((a) => ({ labels: { site, agent: a.id }, value: a.clockOffsetMs! / 1000 })),
    },
    {
      name: "wanwatch_agent_applied_generation",
      help: "Directive generation the agent has applied.",
      type: "gauge",
      samples: s.agents
        .filter((a) => a.appliedGeneration !== null)
        .map((a) => ({ labels: { site, agent: a.id }, value: a.appliedGeneration! })),
    },
    ...notifyFamilies(s),
    ...USAGE.map(
      ([key, name, what]): Family => ({
        name,
        help: `${what} by the site's Durable Object since it last started.`,
        type: "counter",
        samples: [{ labels: { site }, value: usage[key] }],
      }),
    ),
  ]);
}
