// The default route of the agent's own on NetworkManager hosts, one per family, ahead of the routes
// NetworkManager installs (from DHCP and router advertisements, at each profile's metric). Moving
// it with `ip route replace` switches a host without asking NetworkManager to reapply anything: a
// reapply of a device, even of its IPv4 route metric alone (`nmcli device modify`), makes
// NetworkManager remove and re-add the device's IPv6 addresses, which are then unusable for
// duplicate address detection (≈ 1–2 s), so new IPv6 connections found no source address.
import type { UplinkConfig } from "../config/schema.ts";
import type { Family, Route } from "./ip.ts";

/** Ahead of NetworkManager's metrics (`ipv4/ipv6.route-metric`: 100 for ethernet by default, 1024 unset). */
export const OWN_METRIC = 10;

/**
 * `ip` argv lists that leave the agent's own default route of one family through the active
 * uplink, via the gateway NetworkManager learned there. When the active uplink has no route of that
 * family, the agent's goes (unless it is the only one) and NetworkManager's order counts.
 */
export function planOwnRoute(
  current: readonly Route[],
  uplinks: readonly UplinkConfig[],
  activeId: string,
  family: Family,
): string[][] {
  const fam = family === 6 ? ["-6"] : [];
  const active = uplinks.find((u) => u.id === activeId);
  const own = current.find((r) => r.dst === "default" && r.metric === OWN_METRIC);
  const learned = current.find(
    (r) => r.dst === "default" && r.dev === active?.interface && r.gateway && r.metric !== OWN_METRIC,
  );
  if (learned) {
    if (own && own.dev === learned.dev && own.gateway === learned.gateway) return [];
    // `replace` keys on the metric: the route moves in one step, never leaving the host without one.
    return [
      [
        ...fam,
        "route",
        "replace",
        "default",
        "via",
        learned.gateway!,
        "dev",
        learned.dev!,
        "metric",
        String(OWN_METRIC),
      ],
    ];
  }
  // NetworkManager may lack the active uplink's route for a moment (a lease or an advertisement not
  // yet in): the agent's own stays where it is right. Nor does it go while it is the only one.
  const others = current.some((r) => r.dst === "default" && r.metric !== OWN_METRIC);
  if (!own || own.dev === active?.interface || !others) return [];
  return [[...fam, "route", "del", "default", "dev", own.dev!, "metric", String(OWN_METRIC)]];
}
