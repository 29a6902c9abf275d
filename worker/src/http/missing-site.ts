// A site route naming a site nobody configured: the answer lists the sites that exist, closest
// first (a typo is the usual cause), and names the command that creates one.
import type { Env } from "../env.ts";
import { failureResponse, type Failure, type Result } from "../failure.ts";
import { siteIndex } from "../site-index.ts";
import type { C } from "./request.ts";
import { resultResponse } from "./respond.ts";

/** Sites named in the answer at most. */
const SUGGESTED = 3;

/** Levenshtein distance: the edits that turn one id into the other. */
export function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++)
      row[j] = Math.min(prev[j]! + 1, row[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    prev = row;
  }
  return prev[b.length]!;
}

/** At most `max` of `sites`, closest to `name` first (ties alphabetically). */
export function closest(name: string, sites: readonly string[], max = SUGGESTED): string[] {
  return sites
    .map((s) => ({ s, d: editDistance(name, s) }))
    .sort((x, y) => x.d - y.d || x.s.localeCompare(y.s))
    .slice(0, max)
    .map((x) => x.s);
}

async function explained(env: Env, site: string, f: Failure): Promise<Failure> {
  const { sites, total } = await siteIndex(env).list();
  const near = closest(site, sites);
  const known = near.length
    ? `the sites here, closest first: ${near.join(", ")}${total > near.length ? ` (${total} in all)` : ""}`
    : "this edge has no site yet";
  return {
    ...f,
    message: `no site "${site}" on this edge; ${known}. To create it: wanwatch site apply FILE --site ${site}`,
  };
}

/** The answer of an admin or viewer route on `site` (never an agent's: those must not list sites). */
export async function siteResponse<T>(c: C, site: string, r: Result<T>, status = 200): Promise<Response> {
  if (r.ok || r.failure.code !== "site_not_found") return resultResponse(r, status);
  return failureResponse(await explained(c.env, site, r.failure));
}
