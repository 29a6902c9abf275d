// The default route of the agent's own, one per family, ahead of the routes the host's network
// software installs: NetworkManager's (from DHCP and router advertisements, at each profile's
// metric) and, on any host, the kernel's from router advertisements. Moving it with `ip route
// replace` switches without touching theirs:
// - NetworkManager: a reapply of a device, even of its IPv4 route metric alone (`nmcli device
//   modify`), makes it remove and re-add the device's IPv6 addresses, which are then unusable for
//   duplicate address detection (≈ 1–2 s), so new IPv6 connections found no source address.
// - The kernel: a route from an advertisement that is rewritten (another metric, even kept as
//   `proto ra` with its expiry) is no longer the kernel's own; its next advertisement then fails to
//   add the route again (`File exists`) and skips the rest, prefix information included, so the
//   interface's SLAAC address is never renewed and expires.
import type { UplinkConfig } from "../config/schema.ts";
import type { Family, Route } from "./ip.ts";

/** Ahead of NetworkManager's metrics (`ipv4/ipv6.route-metric`: 100 for ethernet by default, 1024 unset). */
export const OWN_METRIC = 10;

/**
 * `ip` argv lists that leave the agent's own default route of one family through the active
 * uplink, via the gateway learned there. When the active uplink has no route of that family, the
 * agent's may go (`mayGo`) and the learned routes' order counts.
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
  const learned = learnedRoute(current, active?.interface, own);
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
  if (!own || !mayGo(current, own.dev === active?.interface, family)) return [];
  return [[...fam, "route", "del", "default", "dev", own.dev!, "metric", String(OWN_METRIC)]];
}

/**
 * The agent's own route, with no learned route of its family on the active uplink, goes: never
 * while it is the only default route; on the active uplink itself, only for IPv6. An IPv4 route
 * may be missing for a moment (a lease not yet in) while its gateway still routes; an IPv6 one
 * goes when the router says it is no default router any more (router lifetime 0, as routers
 * advertise when their own IPv6 upstream is gone): then the other uplinks' IPv6 is better.
 */
function mayGo(current: readonly Route[], onActive: boolean, family: Family): boolean {
  const others = current.some((r) => r.dst === "default" && r.metric !== OWN_METRIC);
  return others && (!onActive || family === 6);
}

/** How far (s) the router the agent's route uses may fall behind the freshest before it moves. */
export const STALE_ROUTER_S = 60;

/**
 * Which of the active interface's learned default routes the agent's follows: the router heard
 * last (the longest expiry left; a route without one never expires). A router that was replaced
 * (a new link-local address) keeps its advertised route until its lifetime runs out (30 min), while
 * the new one's is renewed by every advertisement. The router in use stays while it keeps up, so
 * two live routers do not swap it back and forth.
 */
function learnedRoute(current: readonly Route[], dev: string | undefined, own: Route | undefined): Route | undefined {
  const candidates = current.filter(
    (r) => r.dst === "default" && r.dev === dev && r.gateway && r.metric !== OWN_METRIC,
  );
  const left = (r: Route) => r.expires ?? Number.POSITIVE_INFINITY;
  const freshest = candidates.reduce<Route | undefined>((a, r) => (a && left(a) >= left(r) ? a : r), undefined);
  const inUse = candidates.find((r) => r.dev === own?.dev && r.gateway === own?.gateway);
  return inUse && freshest && left(inUse) >= left(freshest) - STALE_ROUTER_S ? inUse : freshest;
}

/**
 * The agent's own IPv6 route is not where a re-apply would leave it: missing while routers are
 * learned, through a router left behind by a fresher one (a router replaced), or on an interface
 * that learns none any more while another does (its router no longer a default router). The host
 * has drifted even though the uplink may look right.
 */
export function ownRouteOff(current: readonly Route[]): boolean {
  const own = current.find((r) => r.dst === "default" && r.metric === OWN_METRIC);
  if (!own) return current.some((r) => r.dst === "default" && r.gateway);
  const learned = learnedRoute(current, own.dev, own);
  return learned ? learned.gateway !== own.gateway : mayGo(current, true, 6);
}
