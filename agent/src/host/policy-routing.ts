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
import { defaultRoutes, ip, ipv4Address, type Rule, routes, rules } from "./ip.ts";

/** Uplink i (config order) uses table and rule priority TABLE_BASE + i: documented in the README. */
export const TABLE_BASE = 1101;
export const tableFor = (index: number) => TABLE_BASE + index;

/** The gateway of an uplink: configured, else its interface's default route in `main` or in its own table. */
export async function gatewayOf(u: UplinkConfig, table: number): Promise<string | null> {
  if (u.gateway) return u.gateway;
  for (const t of ["main", table] as const) {
    const r = (await defaultRoutes(t)).find((r) => r.dev === u.interface && r.gateway);
    if (r?.gateway) return r.gateway;
  }
  return null;
}

/** What the rules send through each uplink: the edge's IPv4 addresses and port, or (`all`) everything from its address. */
export type Pin = { edge: readonly string[]; port: number } | "all";

/**
 * TCP by number: `ip` reads protocol names from /etc/protocols, which a minimal system lacks
 * (`Invalid "ipproto" value`), and lists them as `tcp` or `ipproto-6`.
 */
const TCP = "6";

/** The selectors (argv after `ip rule add`, before `lookup`) of one uplink's rules; pure. */
export function ruleSelectors(source: string, pin: Pin): string[][] {
  if (pin === "all") return [["from", `${source}/32`]];
  return [...new Set(pin.edge)]
    .sort()
    .map((a) => ["from", `${source}/32`, "to", `${a}/32`, "ipproto", TCP, "dport", String(pin.port)]);
}

/** The selector of a rule the kernel lists, in the form `ruleSelectors` writes. */
export function selectorOf(r: Rule): string[] {
  return [
    ...(r.src && r.src !== "all" ? ["from", `${r.src}/${r.srclen ?? 32}`] : []),
    ...(r.dst && r.dst !== "all" ? ["to", `${r.dst}/${r.dstlen ?? 32}`] : []),
    ...(r.ipproto ? ["ipproto", r.ipproto === "tcp" ? TCP : r.ipproto.replace(/^ipproto-/, "")] : []),
    ...(r.dport !== undefined ? ["dport", String(r.dport)] : []),
  ];
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

    // Exactly today's rules at our priority: the new ones first (the agent's heartbeats never lose
    // their path), then whatever else is there (a killed run's, an old lease's, a moved edge's).
    const want = ruleSelectors(addr.address, pin);
    const key = (sel: readonly string[]) => sel.join(" ");
    const mine = existing.filter((r) => r.priority === table);
    const have = new Set(mine.filter((r) => r.table === String(table)).map((r) => key(selectorOf(r))));
    for (const sel of want.filter((s) => !have.has(key(s))))
      await ip("rule", "add", ...sel, "lookup", String(table), "priority", String(table));
    const wanted = new Set(want.map(key));
    for (const r of mine.filter((r) => r.table !== String(table) || !wanted.has(key(selectorOf(r)))))
      await ip("rule", "del", "priority", String(table), ...selectorOf(r), ...(r.table ? ["lookup", r.table] : []));
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
