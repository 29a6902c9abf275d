// Per-uplink policy routing: the agent's sockets bound to an uplink's source address leave through
// that uplink even while another uplink holds the default route. Node cannot bind to a device, so
// the kernel has to route by source: rules `from <source> to <edge> ipproto tcp dport <port> lookup
// <table>` and one table per uplink holding the uplink's connected subnet and its default route.
// Only the agent's own connections to the edge are pinned: any other connection that carries a dead
// uplink's address (begun before a switch or a reboot, or a closed one resending its FIN) follows
// the default route instead of leaving through the dead uplink. Pinned tunnel replicas, bound to an
// uplink's address on purpose, pin everything from it.
import type { UplinkConfig } from "../config/schema.ts";
import type { UplinkRoute } from "../daemon/host-port.ts";
import { defaultRoutes, ip, ipv4Address, routes, rules } from "./ip.ts";
import { type Pin, planRules, ruleSelectors, tableFor } from "./policy-rules.ts";

/** The gateway of an uplink: configured, else its interface's default route in `main` or in its own table. */
export async function gatewayOf(u: UplinkConfig, table: number): Promise<string | null> {
  if (u.gateway) return u.gateway;
  for (const t of ["main", table] as const) {
    const r = (await defaultRoutes(t)).find((r) => r.dev === u.interface && r.gateway);
    if (r?.gateway) return r.gateway;
  }
  return null;
}

export async function installUplinkRouting(
  uplinks: readonly UplinkConfig[],
  pin: Pin,
): Promise<Map<string, UplinkRoute>> {
  const out = new Map<string, UplinkRoute>();
  const existing = await rules();
  for (const [i, u] of uplinks.entries()) {
    const where = `uplinks[${i}] (${u.id})`;
    const table = tableFor(i);
    const addr = await ipv4Address(u.interface);
    if (!addr) throw new Error(`${where}: interface ${u.interface} has no IPv4 address`);
    const gateway = await gatewayOf(u, table);
    if (!gateway)
      throw new Error(
        `${where}: no default route on ${u.interface} to learn the gateway from; set uplinks[${i}].gateway`,
      );

    // The connected subnet too, so replies to hosts on the uplink's own LAN stay on the LAN.
    for (const r of (await routes("main")).filter(
      (r) => r.dev === u.interface && r.scope === "link" && r.dst !== "default",
    ))
      await ip(
        "route",
        "replace",
        r.dst,
        "dev",
        u.interface,
        "scope",
        "link",
        ...(r.prefsrc ? ["src", r.prefsrc] : []),
        "table",
        String(table),
      );
    await ip("route", "replace", "default", "via", gateway, "dev", u.interface, "table", String(table));

    for (const step of planRules(4, existing, table, ruleSelectors(addr.address, pin))) await ip(...step);
    out.set(u.id, { sourceAddress: addr.address, gateway, interface: u.interface, table });
  }
  return out;
}

export async function removeUplinkRouting(installed: Map<string, UplinkRoute>): Promise<void> {
  const present = await rules();
  for (const r of installed.values()) {
    if (r.table === undefined) continue;
    for (const _ of present.filter((p) => p.priority === r.table)) await ip("rule", "del", "priority", String(r.table));
    await ip("route", "flush", "table", String(r.table));
  }
}
