// The billable work a site's Durable Object reports in its metrics (rows, alarms, messages).
import type { ObjectUsage } from "../../worker/src/metrics.ts";

const NAMES: Record<keyof ObjectUsage, string> = {
  rowsRead: "wanwatch_edge_sqlite_rows_read_total",
  rowsWritten: "wanwatch_edge_sqlite_rows_written_total",
  alarmsSet: "wanwatch_edge_alarms_set_total",
  alarmRuns: "wanwatch_edge_alarm_runs_total",
  webSocketMessages: "wanwatch_edge_websocket_messages_total",
};

export async function objectUsage(edge: { url: string; adminToken: string }, site: string): Promise<ObjectUsage> {
  const res = await fetch(`${edge.url}/v1/sites/${site}/metrics`, {
    headers: { authorization: `Bearer ${edge.adminToken}` },
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`metrics of ${site}: ${res.status} ${text}`);
  const read = (name: string) => {
    const m = new RegExp(`^${name}\\{[^}]*\\} (\\d+)$`, "m").exec(text);
    if (!m) throw new Error(`metrics of ${site} lack ${name}`);
    return Number(m[1]);
  };
  return Object.fromEntries(Object.entries(NAMES).map(([k, name]) => [k, read(name)])) as unknown as ObjectUsage;
}
