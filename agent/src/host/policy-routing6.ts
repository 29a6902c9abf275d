// Per-uplink policy routing for IPv6: the agent's IPv6 channel through an uplink is bound to that
// uplink's address, and the IPv4 rule's form (policy-rules.ts), `from <that address> to <the edge's
// IPv6 address> ipproto 6 dport <port> lookup <table>`, sends it out through the uplink whichever
// uplink holds the IPv6 default route. Only the agent's connections to the edge are pinned:
// anything else from that address follows the default route. The uplink's table and rule priority
// are its IPv4 ones (TABLE_BASE + i): the kernel keeps IPv6 rules and tables apart from IPv4's. SLAAC moves the address (a new prefix, a reboot) and the router's
// link-local gateway may change: the plan is level-triggered, read and compared on every route
// change, so the rule follows.
import type { UplinkConfig } from "../config/schema.ts";
import { defaultRoutes, ip, ipv6Address, routes, rules, type Route, type Rule } from "./ip.ts";
import { type EdgePin, planRules, ruleSelectors, tableFor } from "./policy-rules.ts";

/** An uplink's IPv6 path as the host has it now. */
export interface Ipv6Path {
  interface: string;
  /** Its usable global address (SLAAC or static): the channel's source. */
  source: string;
  /** The router, from the uplink's advertised default route (usually link-local). */
  gateway: string;
}

/** What the plan needs of one uplink: its table, and its path when it should be routed. */
export interface Ipv6Target {
  table: number;
  path: Ipv6Path | null;
}

/** The host's IPv6 rules and, per uplink table, the routes in it. */
export interface Ipv6Routing {
  rules: readonly Rule[];
  tables: ReadonlyMap<number, readonly Route[]>;
}

/** The uplink's IPv6 path: a usable global address and a default route on its interface, or null. */
export async function uplinkIpv6(u: UplinkConfig): Promise<Ipv6Path | null> {
  const source = await ipv6Address(u.interface);
  if (!source) return null;
  const route = (await defaultRoutes("main", 6)).find((r) => r.dev === u.interface && r.gateway);
  return route?.gateway ? { interface: u.interface, source, gateway: route.gateway } : null;
}

/**
 * `ip` argv lists that make the host's IPv6 rules and uplink tables match `targets` (no pin:
 * nothing is routed). Per uplink: exactly its rules for today's address and the edge, and its
 * table's default route through today's router; or neither. Pure.
 */
export function planIpv6Routing(current: Ipv6Routing, targets: readonly Ipv6Target[], pin: EdgePin | null): string[][] {
  const steps: string[][] = [];
  for (const { table, path } of targets) {
    const t = String(table);
    const want = pin === null ? null : path;
    const routesIn = current.tables.get(table) ?? [];
    if (want === null) {
      steps.push(...planRules(6, current.rules, table, []));
      if (routesIn.length) steps.push(["-6", "route", "flush", "table", t]);
      continue;
    }
    // The route first: a rule pointing at an empty table would send the edge's traffic nowhere.
    const route = routesIn.find((r) => r.dst === "default");
    if (routesIn.length !== 1 || route?.gateway !== want.gateway || route.dev !== want.interface) {
      // Anything else in the table (a leftover) goes; the default route is replaced in place.
      if (routesIn.some((r) => r.dst !== "default")) steps.push(["-6", "route", "flush", "table", t]);
      steps.push(["-6", "route", "replace", "default", "via", want.gateway, "dev", want.interface, "table", t]);
    }
    steps.push(...planRules(6, current.rules, table, ruleSelectors(want.source, pin!)));
  }
  return steps;
}

async function readRouting(uplinks: readonly UplinkConfig[]): Promise<Ipv6Routing> {
  const tables = new Map<number, Route[]>();
  for (const [i] of uplinks.entries()) tables.set(tableFor(i), await routes(tableFor(i), 6));
  return { rules: await rules(6), tables };
}

/** Brings the host's IPv6 rules to `paths` (config order; null: the uplink has no IPv6 path) and the edge's IPv6 `pin`. */
export async function routeIpv6(
  uplinks: readonly UplinkConfig[],
  paths: readonly (Ipv6Path | null)[],
  pin: EdgePin | null,
): Promise<void> {
  const targets = uplinks.map((_, i) => ({ table: tableFor(i), path: paths[i] ?? null }));
  for (const step of planIpv6Routing(await readRouting(uplinks), targets, pin)) await ip(...step);
}

/** Removes every IPv6 rule and route the agent put in place for these uplinks. */
export async function unrouteIpv6(uplinks: readonly UplinkConfig[]): Promise<void> {
  await routeIpv6(uplinks, [], null);
}
