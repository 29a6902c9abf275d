// The edge's address as a person gives it: one error that says what is expected.
import { UsageError } from "../lib/errors.ts";

export const EDGE_EXAMPLE = "https://wanwatch.example.workers.dev";

/** http:// is accepted for a local edge (wrangler dev); anything else is one readable line. */
export function edgeUrl(value: string, flag = "--edge"): URL {
  let url: URL | null = null;
  try {
    url = new URL(value);
  } catch {
    // Reported below.
  }
  if (!url || !/^https?:$/.test(url.protocol) || !url.hostname)
    throw new UsageError(`${flag} "${value}": expected the https:// URL of your edge, e.g. ${flag} ${EDGE_EXAMPLE}`);
  return url;
}
