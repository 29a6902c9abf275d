// The edge's IPv4 addresses: for the switcher's check that the route to it leaves the right way,
// and for the per-uplink rules that pin the agent's own connections to it.
import { lookup } from "node:dns/promises";
import { isIP } from "node:net";

export interface EdgeAddresses {
  /** Every IPv4 address of the edge's name, looked up now; the last answer when a lookup fails. */
  (): Promise<string[]>;
  /** What is known without a lookup: the literal address, or the last answer (empty before the first). */
  known(): string[];
}

export function edgeAddresses(edge: string): EdgeAddresses {
  const host = new URL(edge).hostname.replace(/^\[|\]$/g, "");
  let last: string[] = isIP(host) ? [host] : [];
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
