// IPv6 default routes, which come from each router's advertisements: link-local gateways and an
// expiry that the next advertisement renews. iproute2 hosts: the advertised routes get the
// uplinks' metrics. NetworkManager hosts: the agent adds one route of its own ahead of them.
import type { UplinkConfig } from "../config/schema.ts";
import { defaultRoutes, type Route } from "./ip.ts";
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

/**
 * The metric of the IPv6 default route the agent owns on a NetworkManager host: ahead of the
 * routes NetworkManager installs from advertisements (`ipv6.route-metric`, 100 for ethernet by
 * default, 1024 unset).
 */
export const OWN_IPV6_METRIC = 10;

/**
 * `ip` argv lists that leave one IPv6 default route of the agent's own (OWN_IPV6_METRIC) through
 * the active uplink, via the gateway NetworkManager learned there. A NetworkManager reapply that
 * changes IPv6 settings takes the device's SLAAC address and advertised route away until the next
 * advertisement (seconds); this route moves IPv6 with no reapply. When the active uplink has no
 * IPv6 route, the agent's goes (unless it is the only one) and NetworkManager's order counts.
 */
export function planOwnIpv6(current: readonly Route[], uplinks: readonly UplinkConfig[], activeId: string): string[][] {
  const active = uplinks.find((u) => u.id === activeId);
  const own = current.find((r) => r.dst === "default" && r.metric === OWN_IPV6_METRIC);
  const learned = current.find(
    (r) => r.dst === "default" && r.dev === active?.interface && r.gateway && r.metric !== OWN_IPV6_METRIC,
  );
  if (learned) {
    if (own && own.dev === learned.dev && own.gateway === learned.gateway) return [];
    // `replace` keys on the metric: the route moves in one step, never leaving the host without one.
    return [
      [
        "-6",
        "route",
        "replace",
        "default",
        "via",
        learned.gateway!,
        "dev",
        learned.dev!,
        "metric",
        String(OWN_IPV6_METRIC),
      ],
    ];
  }
  // NetworkManager may lack the active uplink's route for a moment (an advertisement not yet
  // heard): the agent's own stays where it is right. Nor does it go while it is the only one.
  const others = current.some((r) => r.dst === "default" && r.metric !== OWN_IPV6_METRIC);
  if (!own || own.dev === active?.interface || !others) return [];
  return [["-6", "route", "del", "default", "dev", own.dev!, "metric", String(OWN_IPV6_METRIC)]];
}
