import { describe, expect, it } from "vitest";
import type { PathQuality } from "#shared";
import { T0, run, shape, type Act } from "./decision-harness.ts";

const sh = shape();
const BAD: PathQuality = { lossRatio: 0.9, rttMs: 40, samples: 60 };

/** Both uplinks heard every second until `cutAt`; after it, isp2 only (probe2 every 250 ms, so the edge judges often). */
function site(cutAt: number, until: number): Act[] {
  const acts: Act[] = [];
  for (let t = T0 + 1_000; t <= until; t += 250) {
    if (t % 1_000 === 0 && t < cutAt) acts.push({ at: t, kind: "beat", uplink: "isp1" });
    acts.push({ at: t, kind: "beat", uplink: "isp2" });
  }
  return acts;
}

const report = (at: number, agent: string, uplinks = ["isp1"]): Act => ({
  at,
  kind: "beat",
  uplink: "isp2",
  witness: { agent, unanswered: uplinks.map((uplink) => ({ uplink, since: at - 300 })) },
});

const failoverAt = (acts: Act[]) =>
  run(
    sh,
    acts.sort((a, b) => a.at - b.at),
  ).switches.find((s) => s.effect.reason === "failover")?.at;

const CUT = T0 + 10_000;

describe("witness reports (examples)", () => {
  it("two standing reports and a heartbeat and a quarter of silence fail over at once", () => {
    const acts = [
      ...site(CUT, CUT + 6_000),
      report(CUT + 300, "srv1"),
      report(CUT + 500, "srv1"),
      report(CUT + 400, "srv2"),
      report(CUT + 600, "srv2"),
    ];
    // isp1 last heard at CUT − 1000; silence enough from CUT + 250, both reports standing from CUT + 600.
    expect(failoverAt(acts)).toBe(CUT + 600);
  });

  it("without witnesses, silence alone: downAfterMs", () => {
    expect(failoverAt(site(CUT, CUT + 6_000))).toBe(CUT - 1_000 + 3_000);
  });

  it("a report is withdrawn by the witness's next beat through the uplink it named, or through the one it came by", () => {
    const base = [...site(CUT, CUT + 6_000), report(CUT + 300, "srv1"), report(CUT + 500, "srv1")];
    const heardThroughIsp1: Act = {
      at: CUT + 450,
      kind: "beat",
      uplink: "isp1",
      witness: { agent: "srv2", unanswered: [] },
    };
    const srv2 = [report(CUT + 300, "srv2"), report(CUT + 400, "srv2")];
    // srv2's beat through isp1 also makes isp1 heard: the silence restarts there.
    expect(failoverAt([...base, ...srv2, { ...heardThroughIsp1 }])).toBe(CUT + 3_500); // downAfterMs after CUT + 450, at the next isp2 beat
    const withdrawn: Act = { at: CUT + 450, kind: "beat", uplink: "isp2", witness: { agent: "srv2", unanswered: [] } };
    expect(failoverAt([...base, ...srv2, withdrawn])).toBe(CUT - 1_000 + 3_000);
  });

  it("reports lapse unless renewed within two heartbeats", () => {
    const acts = [
      ...site(CUT, CUT + 6_000),
      report(CUT - 1_800, "srv1"),
      report(CUT - 1_600, "srv1"),
      report(CUT + 300, "srv2"),
      report(CUT + 500, "srv2"),
    ];
    expect(failoverAt(acts)).toBe(CUT - 1_000 + 3_000);
  });

  it("reports through a degraded uplink do not count", () => {
    const acts = [
      ...site(CUT, CUT + 6_000),
      { at: T0 + 2_000, kind: "beat" as const, uplink: "isp2", path: BAD },
      report(CUT + 300, "srv1"),
      report(CUT + 500, "srv1"),
      report(CUT + 300, "srv2"),
      report(CUT + 500, "srv2"),
    ];
    expect(failoverAt(acts)).toBe(CUT - 1_000 + 3_000);
  });

  it("a report naming the uplink it travels through, or one the site lacks, is no report", () => {
    const acts = [
      ...site(CUT, CUT + 6_000),
      report(CUT + 300, "srv1", ["isp2", "isp9"]),
      report(CUT + 500, "srv1", ["isp2", "isp9"]),
      report(CUT + 300, "srv2"),
      report(CUT + 500, "srv2"),
    ];
    expect(failoverAt(acts)).toBe(CUT - 1_000 + 3_000);
  });
});
