// Plain-text tables for the terminal.
import type { SiteEvent, SiteStatus, UplinkStatus } from "#shared";

export function table(head: string[], rows: string[][]): string {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!)))
      .join("  ")
      .trimEnd();
  return [line(head), ...rows.map(line)].join("\n");
}

/** "4s ago", "3m ago", "2h ago"; "never" for null. */
export function ago(at: number | null, now: number): string {
  if (at === null) return "never";
  const s = Math.max(0, Math.round((now - at) / 1000));
  if (s < 120) return `${s}s ago`;
  if (s < 7200) return `${Math.round(s / 60)}m ago`;
  if (s < 172_800) return `${Math.round(s / 3600)}h ago`;
  return `${Math.round(s / 86_400)}d ago`;
}

export const ms = (v: number | null): string => (v === null ? "-" : `${v < 10 ? v.toFixed(1) : Math.round(v)} ms`);
const dash = (v: unknown) => (v === null || v === undefined || v === "" ? "-" : String(v));

/** A metered uplink's use this period, against its cap if it has one. */
function dataUse(d: UplinkStatus["dataUse"]): string {
  if (!d) return "-";
  return d.capMB === null ? `${d.usedMB} MB` : `${d.usedMB} / ${d.capMB} MB (${d.percent} %)`;
}

export function statusTable(s: SiteStatus): string {
  const out = [
    `site ${s.site}: active uplink ${s.activeUplink ?? "none"}, generation ${s.generation}, mode ${s.mode}${s.since ? `, since ${new Date(s.since).toISOString()} (${ago(s.since, s.now)})` : ""}`,
  ];
  if (s.override)
    out.push(`override: ${s.override.uplink} until ${new Date(s.override.until).toISOString()} (${s.override.reason})`);
  out.push(
    "",
    table(
      [
        "UPLINK",
        "PRIORITY",
        "STATE",
        "LAST HEARTBEAT",
        "PUBLIC IP",
        "ASN",
        "RTT EDGE",
        "RTT ROUTER",
        "LOSS (1 MIN)",
        "DATA THIS PERIOD",
      ],
      s.uplinks.map((u) => [
        u.name ? `${u.id} (${u.name})` : u.id,
        String(u.priority),
        u.degraded ? `${u.state}, degraded` : u.state,
        ago(u.lastHeartbeatAt, s.now),
        dash(u.observedIp),
        dash(u.observedAsn),
        ms(u.rttMs),
        ms(u.gatewayRttMs),
        u.lossRatio === null ? "-" : `${Math.round(u.lossRatio * 100)} %`,
        dataUse(u.dataUse),
      ]),
    ),
  );
  if (s.agents.length)
    out.push(
      "",
      table(
        ["AGENT", "ROLE", "LAST SEEN", "UPLINKS SEEN", "APPLIED", "TUNNELS", "ROUTES VIA", "VERSION", "LAST ERROR"],
        s.agents.map((a) => [
          a.id + (a.tunnelRestarter ? " *" : ""),
          a.role + (a.uplink ? ` (${a.uplink})` : ""),
          ago(a.lastSeenAt, s.now) + (a.stale ? " (stale)" : ""),
          a.uplinksSeen.join(",") || "-",
          dash(a.appliedGeneration),
          dash(a.tunnelGeneration),
          dash(a.routedUplink) + (a.misroutedUplinks.length ? ` (misrouted: ${a.misroutedUplinks.join(",")})` : ""),
          dash(a.version),
          dash(a.lastError),
        ]),
      ),
    );
  else out.push("", "no agents enrolled");
  out.push(
    "",
    `tunnels: ${s.tunnels.mode}${s.tunnels.mode === "none" ? "" : `, generation ${s.tunnels.generation}, restarter ${dash(s.tunnels.restarter)}, ${s.tunnels.done ? "done" : "pending"}`}`,
  );
  if (s.notify.targets.length)
    out.push(
      "",
      table(
        ["NOTIFY TARGET", "PENDING", "NEXT ATTEMPT", "DELIVERED", "GIVEN UP", "LAST ERROR"],
        s.notify.targets.map((t) => [
          t.target,
          t.pending ? `${t.pending}${t.retrying ? ` (${t.retrying} retrying)` : ""}` : "-",
          t.nextAttemptAt === null ? "-" : new Date(t.nextAttemptAt).toISOString(),
          String(t.delivered),
          String(t.failed),
          t.lastError === null ? "-" : `${t.lastError} (${ago(t.lastErrorAt, s.now)})`,
        ]),
      ),
    );
  return out.join("\n");
}

export function eventsTable(events: SiteEvent[]): string {
  if (!events.length) return "no events";
  return table(
    ["TIME", "KIND", "MESSAGE"],
    events.map((e) => [new Date(e.at).toISOString(), e.kind, e.message]),
  );
}
