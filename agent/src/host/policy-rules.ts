// The per-uplink rules of both families, planned one way: which of the agent's connections an
// uplink's table carries, and the `ip rule` changes that leave exactly those at its priority.
// Pure: the adapters (policy-routing.ts for IPv4, policy-routing6.ts for IPv6) read and run.
import type { Family, Rule } from "./ip.ts";

/** Uplink i (config order) uses table and rule priority TABLE_BASE + i, in both families: documented in the README. */
export const TABLE_BASE = 1101;
export const tableFor = (index: number) => TABLE_BASE + index;

/** The edge's addresses (of one family) and TCP port: only the agent's own connections to it are pinned. */
export interface EdgePin {
  edge: readonly string[];
  port: number;
}

/** What an uplink's rules send through it: the agent's connections to the edge, or (`all`) everything from its address. */
export type Pin = EdgePin | "all";

/**
 * TCP by number: `ip` reads protocol names from /etc/protocols, which a minimal system lacks
 * (`Invalid "ipproto" value`), and lists them as `tcp` or `ipproto-6`.
 */
const TCP = "6";

const host = (address: string) => `${address}/${address.includes(":") ? 128 : 32}`;

/** The selectors (argv after `ip rule add`, before `lookup`) of one uplink's rules for its source address. */
export function ruleSelectors(source: string, pin: Pin): string[][] {
  if (pin === "all") return [["from", host(source)]];
  return [...new Set(pin.edge)]
    .sort()
    .map((a) => ["from", host(source), "to", host(a), "ipproto", TCP, "dport", String(pin.port)]);
}

/** The selector of a rule the kernel lists, in the form `ruleSelectors` writes (`ip -j` leaves out a full-length prefix). */
export function selectorOf(r: Rule): string[] {
  const prefix = (address: string, len: number | undefined) =>
    len === undefined ? host(address) : `${address}/${len}`;
  return [
    ...(r.src && r.src !== "all" ? ["from", prefix(r.src, r.srclen)] : []),
    ...(r.dst && r.dst !== "all" ? ["to", prefix(r.dst, r.dstlen)] : []),
    ...(r.ipproto ? ["ipproto", r.ipproto === "tcp" ? TCP : r.ipproto.replace(/^ipproto-/, "")] : []),
    ...(r.dport !== undefined ? ["dport", String(r.dport)] : []),
  ];
}

/**
 * `ip` argv lists that leave exactly `want` at an uplink's priority, each looking up its table:
 * the missing ones first (the agent's heartbeats never lose their path), then whatever else is
 * there (a killed run's, an old lease's or address's, a moved edge's, another table's).
 */
export function planRules(
  family: Family,
  current: readonly Rule[],
  table: number,
  want: readonly string[][],
): string[][] {
  const t = String(table);
  const key = (sel: readonly string[]) => sel.join(" ");
  const wanted = new Set(want.map(key));
  const kept = new Set<string>();
  const stale: Rule[] = [];
  for (const r of current.filter((r) => r.priority === table)) {
    const k = key(selectorOf(r));
    if (r.table === t && wanted.has(k) && !kept.has(k)) kept.add(k);
    else stale.push(r);
  }
  return [
    ...want
      .filter((s) => !kept.has(key(s)))
      .map((s) => [`-${family}`, "rule", "add", ...s, "lookup", t, "priority", t]),
    ...stale.map((r) => [
      `-${family}`,
      "rule",
      "del",
      ...selectorOf(r),
      ...(r.table ? ["lookup", r.table] : []),
      "priority",
      t,
    ]),
  ];
}
