// The oldest Node the bundle runs on: Debian 12's and Raspberry Pi OS bookworm's apt `nodejs`
// (18.19); execa needs 18.19 as well.
export const MIN_NODE = "18.19.0";

/** Null when `version` (e.g. process.versions.node) is new enough, else the one line to print. */
export function nodeVersionProblem(version: string, min = MIN_NODE): string | null {
  const parts = (v: string) => v.split(".").map((x) => Number.parseInt(x, 10) || 0);
  const [have, need] = [parts(version), parts(min)];
  for (let i = 0; i < 3; i++) {
    if ((have[i] ?? 0) > (need[i] ?? 0)) return null;
    if ((have[i] ?? 0) < (need[i] ?? 0))
      return `wanwatch needs Node ${min} or newer; this is Node ${version} (${process.execPath})`;
  }
  return null;
}
