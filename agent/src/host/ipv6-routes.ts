// IPv6 default routes, which come from each router's advertisements: link-local gateways and an
// expiry that the next advertisement renews. Both backends give them the uplinks' metrics.
import type { UplinkConfig } from "../config/schema.ts";
import { defaultRoutes, type Route } from "./ip.ts";
import { desiredMetric, planDefaultRoutes, type RouteTarget } from "./metrics.ts";

/**
 * `ip` argv lists that give each uplink's advertised default route its metric, keeping its gateway
 * and expiry. `before`: routes read earlier, for a route that has just gone (NetworkManager drops a
 * device's advertised route on reapply until the next advertisement); it is put back at once. An
 * uplink without IPv6 is left alone, so a host with IPv6 on one uplink keeps it.
 */
export async function planIpv6(
  uplinks: readonly UplinkConfig[],
  activeId: string,
  before: readonly Route[] = [],
): Promise<string[][]> {
  const current = await defaultRoutes("main", 6);
  const targets: RouteTarget[] = [];
  for (const u of uplinks) {
    const r =
      current.find((r) => r.dev === u.interface && r.gateway) ?? before.find((r) => r.dev === u.interface && r.gateway);
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
