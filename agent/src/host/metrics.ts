// Which default-route metric each uplink should have, and (for iproute2, IPv4) the route changes
// that get there. Pure: the backends read the host, call these, and run the result.
import type { UplinkConfig } from "../config/schema.ts";
import type { Route } from "./ip.ts";

/** Lowest wins. 100 is NetworkManager's own default for ethernet, so a switched host looks familiar. */
export const ACTIVE_METRIC = 100;
const BACKUP_METRIC = 200;

/** The active uplink gets the lowest metric; the others keep their config order behind it. */
export function desiredMetric(uplinks: readonly UplinkConfig[], id: string, activeId: string): number {
  return id === activeId ? ACTIVE_METRIC : BACKUP_METRIC + uplinks.findIndex((u) => u.id === id);
}

export interface RouteTarget {
  uplink: string;
  dev: string;
  gateway: string;
  metric: number;
}

/**
 * `ip` argv lists that turn the main table's default routes into `targets`: every target route is
 * added (or its gateway corrected) before any stale default route on a managed interface is
 * deleted, so the host is never without a default route. Empty when nothing differs.
 */
export function planDefaultRoutes(current: readonly Route[], targets: readonly RouteTarget[]): string[][] {
  const managed = new Set(targets.map((t) => t.dev));
  const has = (t: RouteTarget) =>
    current.some(
      (r) => r.dst === "default" && r.dev === t.dev && r.gateway === t.gateway && (r.metric ?? 0) === t.metric,
    );
  const wanted = (r: Route) =>
    targets.some((t) => r.dev === t.dev && r.gateway === t.gateway && (r.metric ?? 0) === t.metric);
  // The active uplink's route first: from that moment on new connections already use it.
  const adds = [...targets].sort((a, b) => a.metric - b.metric).filter((t) => !has(t));
  // `replace` keys on the metric alone: an add already overwrote any route with its metric.
  const replaced = new Set(adds.map((t) => t.metric));
  const deletes = current.filter(
    (r) =>
      r.dst === "default" && r.dev !== undefined && managed.has(r.dev) && !wanted(r) && !replaced.has(r.metric ?? 0),
  );
  return [
    ...adds.map((t) => ["route", "replace", "default", "via", t.gateway, "dev", t.dev, "metric", String(t.metric)]),
    ...deletes.map((r) => [
      "route",
      "del",
      "default",
      ...(r.gateway ? ["via", r.gateway] : []),
      "dev",
      r.dev!,
      "metric",
      String(r.metric ?? 0),
    ]),
  ];
}
