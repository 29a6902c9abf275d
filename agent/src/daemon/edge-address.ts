// The edge's IPv4 address, for the switcher's check that the route to it leaves the right way.
import { lookup } from "node:dns/promises";
import { isIP } from "node:net";

export function edgeAddressResolver(edge: string): () => Promise<string> {
  const host = new URL(edge).hostname.replace(/^\[|\]$/g, "");
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
