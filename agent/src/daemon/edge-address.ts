// The edge's addresses: IPv4 for the switcher's check that the route to it leaves the right way and
// for the per-uplink rules that pin the agent's own connections to it; IPv6 for the IPv6 channels.
import { lookup } from "node:dns/promises";
import { isIP } from "node:net";

const hostOf = (edge: string) => new URL(edge).hostname.replace(/^\[|\]$/g, "");

export interface EdgeAddresses {
  /** Every IPv4 address of the edge's name, looked up now; the last answer when a lookup fails. */
  (): Promise<string[]>;
  /** What is known without a lookup: the literal address, or the last answer (empty before the first). */
  known(): string[];
}

export function edgeAddresses(edge: string): EdgeAddresses {
  const host = hostOf(edge);
  // An IPv6 literal has no IPv4 address (the config refuses it; nothing is looked up for it either).
  let last: string[] = isIP(host) === 4 ? [host] : [];
  const resolve = async () => {
    if (isIP(host)) return last;
    try {
      const found = (await lookup(host, { family: 4, all: true })).map((a) => a.address);
      if (found.length) last = found;
    } catch (err) {
      // DNS through a dead uplink may fail; the addresses from a minute ago are still the edge's.
      if (!last.length) throw new Error(`cannot resolve the edge ${host}`, { cause: err });
    }
    return last;
  };
  return Object.assign(resolve, { known: () => last });
}

/** The edge's address a new connection would use (the lookup's first). */
export function edgeAddressResolver(edge: string): () => Promise<string> {
  const all = edgeAddresses(edge);
  return async () => (await all())[0]!;
}

/** The edge's TCP port: the URL's, else its scheme's. */
export function edgePort(edge: string): number {
  const u = new URL(edge);
  return Number(u.port) || (u.protocol === "https:" ? 443 : 80);
}

/** An edge given by its IPv4 address has no IPv6 one the agent could know. */
export const edgeMayHaveIpv6 = (edge: string): boolean => isIP(hostOf(edge)) !== 4;

/** How long an IPv6 address of the edge is used before it is looked up again. */
const IPV6_TTL_MS = 60_000;

/**
 * The edge's IPv6 address (its name's AAAA record), or null when it has none: an edge given as an
 * IPv4 address, or a name without one. A failed lookup keeps the last answer.
 */
export function edgeAddress6Resolver(edge: string, now: () => number = Date.now): () => Promise<string | null> {
  const host = hostOf(edge);
  let last: { address: string | null; at: number } | null = null;
  return async () => {
    const family = isIP(host);
    if (family) return family === 6 ? host : null;
    if (last && now() - last.at < IPV6_TTL_MS) return last.address;
    try {
      last = { address: (await lookup(host, { family: 6 })).address, at: now() };
    } catch (err) {
      // No AAAA record at all: the edge has no IPv6 (asked again after the TTL).
      const code = (err as NodeJS.ErrnoException).code;
      if (code === "ENOTFOUND" || code === "ENODATA" || !last) last = { address: null, at: now() };
    }
    return last.address;
  };
}
