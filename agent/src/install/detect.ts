// What `agent install` can learn about the host by itself: its default routes (each with its
// interface and router) and the NetworkManager connection of an interface.
import { readFileSync } from "node:fs";
import { run } from "../host/exec.ts";

export interface DefaultRoute {
  interface: string;
  gateway: string | null;
  metric: number;
}

/** /proc/net/route holds addresses as little-endian hex. */
function ipv4(hex: string): string | null {
  const n = Number.parseInt(hex, 16);
  return n ? [n & 255, (n >>> 8) & 255, (n >>> 16) & 255, n >>> 24].join(".") : null;
}

/** The host's IPv4 default routes, lowest metric first (empty when the table cannot be read). */
export function defaultRoutes(routeTable = "/proc/net/route"): DefaultRoute[] {
  try {
    return readFileSync(routeTable, "utf8")
      .trim()
      .split("\n")
      .slice(1)
      .map((l) => l.trim().split(/\s+/))
      .filter((r) => r[1] === "00000000" && r[7] === "00000000")
      .map((r) => ({ interface: r[0]!, gateway: ipv4(r[2]!), metric: Number(r[6]) }))
      .sort((a, b) => a.metric - b.metric);
  } catch {
    return [];
  }
}

/** The interface of the IPv4 default route with the lowest metric. */
export const defaultRouteInterface = (routeTable?: string): string | null =>
  defaultRoutes(routeTable)[0]?.interface ?? null;

/** The NetworkManager connection active on `iface`, or null (no nmcli, not managed, no connection). */
export async function nmConnection(iface: string): Promise<string | null> {
  try {
    // -e no: terse output escapes ':' by default, and a profile may be named "ISP: fiber".
    const name = (
      await run(["nmcli", "-e", "no", "-g", "GENERAL.CONNECTION", "device", "show", iface], { timeoutMs: 5_000 })
    ).trim();
    return name || null;
  } catch {
    return null;
  }
}
