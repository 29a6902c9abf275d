// The edge's addresses: IPv4 for the switcher's check that the route to it leaves the right way,
// IPv6 for the agent's IPv6 channels and the rules that pin them to their uplinks.
import { lookup } from "node:dns/promises";
import { isIP } from "node:net";

const hostOf = (edge: string) => new URL(edge).hostname.replace(/^\[|\]$/g, "");

export function edgeAddressResolver(edge: string): () => Promise<string> {
  const host = hostOf(edge);
  let last: string | null = isIP(host) ? host : null;
  return async () => {
    if (isIP(host)) return host;
    try {
      last = (await lookup(host, { family: 4 })).address;
    } catch (err) {
      // DNS through a dead uplink may fail; the address from a minute ago is still the edge's.
      if (!last) throw new Error(`cannot resolve the edge ${host}`, { cause: err });
    }
    return last;
  };
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
