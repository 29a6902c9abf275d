// IPv6 default routes on iproute2 hosts, which come from each router's advertisements: link-local
// gateways and an expiry that the next advertisement renews. The advertised routes get the
// uplinks' metrics. (NetworkManager hosts: own-route.ts.)
import type { UplinkConfig } from "../config/schema.ts";
import { defaultRoutes } from "./ip.ts";
import { desiredMetric, planDefaultRoutes, type RouteTarget } from "./metrics.ts";

/**
 * `ip` argv lists that give each uplink's advertised default route its metric, keeping its gateway
 * and expiry (iproute2 hosts). An uplink without IPv6 is left alone, so a host with IPv6 on one
 * uplink keeps it.
 */
export async function planIpv6(uplinks: readonly UplinkConfig[], activeId: string): Promise<string[][]> {
  const current = await defaultRoutes("main", 6);
  const targets: RouteTarget[] = [];
  for (const u of uplinks) {
    const r = current.find((r) => r.dev === u.interface && r.gateway);
    if (!r) continue;
    const keep =
      r.protocol === "ra" && r.expires !== undefined
        ? ["proto", "ra", "expires", String(Math.max(1, Math.round(r.expires)))]
        : [];
    targets.push({
      uplink: u.id,
      dev: u.interface,
      gateway: r.gateway!,
      metric: desiredMetric(uplinks, u.id, activeId),
      keep,
    });
  }
  return planDefaultRoutes(current, targets, 6);
}
