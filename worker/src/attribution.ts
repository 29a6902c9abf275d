// Which uplink a heartbeat really travelled through, judged by the public address (and ASN) the
// edge saw. Probes sit behind exactly one uplink, so their addresses are the reference: over IPv4
// the router's NAT address, over IPv6 (no NAT) the uplink's prefix.

export interface Observed {
  ip: string | null;
  asn: number | null;
}

/** The family a heartbeat travelled over, by the address the edge saw it from. */
export type Family = 4 | 6;
export const familyOf = (ip: string | null): Family => (ip !== null && prefix64(ip) !== null ? 6 : 4);

/**
 * The client's address as the edge records it: an IPv4 client of a dual-stack listener shows as
 * `::ffff:a.b.c.d` (a local edge on `::`; Cloudflare never sends one) and is IPv4 all the same.
 */
export function clientAddress(raw: string | null | undefined): string | null {
  if (!raw) return null;
  const mapped = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i.exec(raw);
  return mapped ? mapped[1]! : raw;
}

/**
 * Where an agent's misrouting through `uplink` is recorded: IPv4 and IPv6 heartbeats of one uplink
 * leave by separate rules, so each family is judged (and cleared) on its own.
 */
export const misrouteKey = (uplink: string, family: Family): string => (family === 6 ? `${uplink}/6` : uplink);
/** The uplink a misroute key is about. */
export const misrouteUplink = (key: string): string => key.replace(/\/6$/, "");

/** Per uplink: the public IPv4 address, the IPv6 address and the ASN last seen from its probes. */
export type Learned = ReadonlyMap<string, Observed & { ip6?: string | null }>;

export interface Attribution {
  /** The uplink this heartbeat is evidence for, or null when it proves nothing. */
  evidenceFor: string | null;
  /** Set when the heartbeat claims one uplink but came through another. */
  misroutedVia: string | null;
}

/**
 * The /64 an IPv6 address belongs to, spelt one way ("2001:db8:1::/64"), or null for an IPv4
 * address or something unreadable. A /64 is what a router advertises on its LAN, whatever size
 * the ISP delegated.
 */
export function prefix64(address: string): string | null {
  if (!address.includes(":")) return null;
  const [head = "", tail, ...more] = address.toLowerCase().split("::");
  if (more.length) return null;
  const split = (s: string) => (s === "" ? [] : s.split(":"));
  const h = split(head);
  const t = tail === undefined ? [] : split(tail);
  // An embedded IPv4 tail (::ffff:1.2.3.4) takes two groups; only the first four matter here.
  const width = h.length + t.length + t.filter((g) => g.includes(".")).length;
  const groups = tail === undefined ? h : [...h, ...Array(Math.max(0, 8 - width)).fill("0"), ...t];
  const first = groups.slice(0, 4);
  if (first.length < 4 || !first.every((g) => /^[0-9a-f]{1,4}$/.test(g))) return null;
  const net = first.map((g) => g.replace(/^0+(?=.)/, ""));
  while (net.length && net.at(-1) === "0") net.pop();
  return `${net.join(":")}::/64`;
}

/** The same network: the same IPv4 address, or an IPv6 address of the same /64. */
function sameNetwork(seen: string, ref: Observed & { ip6?: string | null }): boolean {
  const p = prefix64(seen);
  if (p === null) return ref.ip === seen;
  return !!ref.ip6 && prefix64(ref.ip6) === p;
}

export function attribute(claimed: string, seen: Observed, learned: Learned): Attribution {
  for (const [uplink, ref] of learned) {
    if (uplink === claimed) continue;
    const sameIp = seen.ip !== null && sameNetwork(seen.ip, ref);
    // ASN only speaks when both uplinks' ASNs are known and differ (two ISPs, two networks).
    const claimedAsn = learned.get(claimed)?.asn ?? null;
    const sameAsn = seen.asn !== null && ref.asn === seen.asn && claimedAsn !== null && claimedAsn !== seen.asn;
    if (sameIp || sameAsn) return { evidenceFor: uplink, misroutedVia: uplink };
  }
  return { evidenceFor: claimed, misroutedVia: null };
}
