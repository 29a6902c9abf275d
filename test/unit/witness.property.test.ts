import { WITNESS_CONFIRM_MS } from "#shared";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { run, shape, type Run } from "./decision-harness.ts";
import { faults, siteParams, simulate, type Delivery, type SiteParams } from "./witness-site.ts";

const sh = shape();
/** One heartbeat plus a quarter: the silence the README promises before witnesses count. */
const SILENCE_MS = 1_250;

const witnessDowns = (r: Run) =>
  r.effects.flatMap(({ at, effect: e }) => (e.kind === "uplink-state" && e.witnesses ? [{ at, e }] : []));

/** When isp1 was last heard at or before `t`, by the deliveries; an edge restart counts as hearing it. */
function lastHeard(d: readonly Delivery[], restarts: readonly number[], t: number): number {
  return Math.max(
    -Infinity,
    ...d.filter((x) => x.uplink === "isp1" && x.at <= t).map((x) => x.at),
    ...restarts.filter((x) => x <= t),
  );
}

/**
 * The servers standing as witnesses against isp1 at `t`, by the deliveries: their latest isp2 beat
 * (within two heartbeats, after any restart) reports isp1, in a run of reports that began at least
 * WITNESS_CONFIRM_MS before, and nothing of theirs came through isp1 since.
 */
function standing(d: readonly Delivery[], restarts: readonly number[], t: number): string[] {
  const restart = Math.max(-Infinity, ...restarts.filter((x) => x <= t));
  const agents = [...new Set(d.filter((x) => x.agent.startsWith("srv")).map((x) => x.agent))];
  return agents.filter((agent) => {
    const mine = d.filter((x) => x.agent === agent && x.at <= t);
    const viaIsp1 = Math.max(-Infinity, ...mine.filter((x) => x.uplink === "isp1").map((x) => x.at));
    const viaIsp2 = mine.filter((x) => x.uplink === "isp2");
    const report = viaIsp2.at(-1);
    // The report has stood WITNESS_CONFIRM_MS: the first of its unbroken run came that long before.
    let first = viaIsp2.length - 1;
    while (first > 0 && viaIsp2[first - 1]!.unanswered.length && viaIsp2[first - 1]!.at > viaIsp1) first--;
    return (
      !!report &&
      t - viaIsp2[first]!.at >= WITNESS_CONFIRM_MS &&
      report.at > viaIsp1 &&
      report.at >= restart &&
      t - report.at <= 2_000 &&
      report.unanswered.some((u) => u.uplink === "isp1")
    );
  });
}

const anyFault = fc.oneof(...Object.values(faults));
const local = fc.oneof(faults["lan-down"], faults["probe-dead"], faults.lossy, faults.slow);

describe("witness reports (the engine's rule, on simulated sites)", () => {
  it("take an uplink down only after a heartbeat and a quarter of silence at the edge, on two servers' standing reports", () => {
    let seen = 0;
    fc.assert(
      fc.property(siteParams(anyFault), (p) => {
        const { acts, deliveries } = simulate(p);
        const r = run(sh, acts);
        for (const { at, e } of witnessDowns(r)) {
          seen++;
          expect(e.uplink).toBe("isp1");
          expect(at - lastHeard(deliveries, p.restarts, at)).toBeGreaterThanOrEqual(SILENCE_MS);
          const who = standing(deliveries, p.restarts, at);
          expect(who.length).toBeGreaterThanOrEqual(2);
          expect(e.witnesses!.every((w) => who.includes(w))).toBe(true);
        }
      }),
      { numRuns: 300 },
    );
    expect(seen).toBeGreaterThan(30);
  });

  it("a cut seen by two or more servers fails over before downAfterMs: within a heartbeat, the bound, the confirmation and a heartbeat", () => {
    fc.assert(
      fc.property(siteParams(faults.cut), (p: SiteParams) => {
        const { acts, deliveries } = simulate({ ...p, restarts: [] });
        const r = run(sh, acts);
        const cut = p.fault.at;
        const last = lastHeard(deliveries, [], cut + 5_000);
        const failover = r.switches.find((s) => s.effect.reason === "failover");
        expect(failover?.effect.to).toBe("isp2");
        // The last heartbeat through isp1 left before the cut; every server sends one more within a
        // heartbeat of it, unanswered for 300 ms; the next isp2 message after that decides.
        expect(failover!.at - cut).toBeLessThanOrEqual(1_000 + 60 + 300 + WITNESS_CONFIRM_MS + 1_000);
        expect(failover!.at - last).toBeGreaterThanOrEqual(SILENCE_MS);
        expect(failover!.at - last).toBeLessThan(3_000);
      }),
      { numRuns: 200 },
    );
  });

  it("local faults never move the site: one server's LAN port, a dead probe, a lossy or a slow isp1, clock skew, edge restarts", () => {
    fc.assert(
      fc.property(siteParams(local), (p) => {
        const { acts } = simulate(p);
        const r = run(sh, acts);
        expect(witnessDowns(r)).toEqual([]);
        expect(r.switches.map((s) => s.effect.reason)).toEqual(["initial"]);
      }),
      { numRuns: 400 },
    );
  });

  it("`since` is never judged: skewed clocks change nothing", () => {
    fc.assert(
      fc.property(siteParams(anyFault), fc.integer({ min: -3_600_000, max: 3_600_000 }), (p, skew) => {
        const a = run(sh, simulate({ ...p, skewMs: 0 }).acts);
        const b = run(sh, simulate({ ...p, skewMs: skew }).acts);
        expect(b.switches.map((s) => [s.at, s.effect])).toEqual(a.switches.map((s) => [s.at, s.effect]));
      }),
      { numRuns: 100 },
    );
  });

  it("quorum 0 turns witnesses off: a cut waits out downAfterMs, as a site of probes alone does", () => {
    fc.assert(
      fc.property(siteParams(faults.cut), (p) => {
        const { acts, deliveries } = simulate({ ...p, restarts: [] });
        const r = run(shape({ witnessQuorum: 0 }), acts);
        const failover = r.switches.find((s) => s.effect.reason === "failover")!;
        expect(failover.at - lastHeard(deliveries, [], failover.at)).toBeGreaterThanOrEqual(3_000);
        expect(witnessDowns(r)).toEqual([]);
      }),
      { numRuns: 100 },
    );
  });

  it("an uplink taken down by witnesses is up again at its first heartbeat", () => {
    fc.assert(
      fc.property(siteParams(faults.cut), fc.integer({ min: 2_000, max: 8_000 }), (p, outage) => {
        const { acts } = simulate({ ...p, restarts: [] });
        const down = witnessDowns(run(sh, acts))[0]!;
        const back = down.at + outage;
        const withBeat = [
          ...acts.filter((a) => a.at < back),
          { at: back, kind: "beat" as const, uplink: "isp1" },
          { at: back + 500, kind: "beat" as const, uplink: "isp2" },
        ];
        const r = run(sh, withBeat);
        expect(r.state.uplinks.isp1!.state).toBe("up");
        expect(r.state.uplinks.isp1!.upSince).toBe(back);
      }),
      { numRuns: 100 },
    );
  });
});
