// iproute2 backend: rewrites the main table's default routes, IPv4 and IPv6, so the active
// uplink's have the lowest metric. For hosts without NetworkManager; a DHCP client that re-adds
// its own default route on renewal is undone again by the agent's drift repair (it watches the
// routes).
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import type { UplinkConfig } from "../config/schema.ts";
import type { UplinkRoute } from "../daemon/host-port.ts";
import { defaultRoutes, ipBatch } from "./ip.ts";
import { planIpv6 } from "./ipv6-routes.ts";
import { desiredMetric, planDefaultRoutes, type RouteTarget } from "./metrics.ts";

export async function applyWithIproute2(
  uplinks: readonly UplinkConfig[],
  learned: Map<string, UplinkRoute>,
  activeId: string,
  signal: AbortSignal,
): Promise<boolean> {
  advertisedRouteMetrics(uplinks, activeId);
  const [v4, v6] = await Promise.all([planIpv4(uplinks, learned, activeId), planIpv6(uplinks, activeId)]);
  // Stopping part-way is safe: each plan adds before it deletes.
  await ipBatch([...v4, ...v6], signal);
  return v4.length + v6.length > 0;
}

async function planIpv4(
  uplinks: readonly UplinkConfig[],
  learned: Map<string, UplinkRoute>,
  activeId: string,
): Promise<string[][]> {
  const current = await defaultRoutes("main");
  const targets: RouteTarget[] = [];
  for (const [i, u] of uplinks.entries()) {
    const gateway =
      u.gateway ?? current.find((r) => r.dev === u.interface && r.gateway)?.gateway ?? learned.get(u.id)?.gateway;
    if (!gateway) {
      if (u.id === activeId)
        throw new Error(`no gateway known for uplink ${u.id} (${u.interface}); set uplinks[${i}].gateway`);
      continue; // a backup without a known gateway keeps whatever it has
    }
    targets.push({ uplink: u.id, dev: u.interface, gateway, metric: desiredMetric(uplinks, u.id, activeId) });
  }
  return planDefaultRoutes(current, targets);
}

/**
 * The metric the kernel gives the default route of each interface's next router advertisement
 * (`ra_defrtr_metric`): the same as the switch, so an advertisement renews the route it finds
 * instead of adding one at the kernel's 1024.
 */
function advertisedRouteMetrics(uplinks: readonly UplinkConfig[], activeId: string): void {
  for (const u of uplinks) {
    const file = `/proc/sys/net/ipv6/conf/${u.interface}/ra_defrtr_metric`;
    if (!existsSync(file)) continue; // no IPv6 on it, or a kernel older than 5.16
    const want = String(desiredMetric(uplinks, u.id, activeId));
    if (readFileSync(file, "utf8").trim() !== want) writeFileSync(file, want);
  }
}
