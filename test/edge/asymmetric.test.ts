import { describe, expect, it } from "vitest";
import { TestAgent, createSite, edgeClock, events, status } from "./support.ts";

const at = edgeClock(Date.UTC(2026, 0, 1));
const IP = { isp1: "198.51.100.1", isp2: "198.51.100.5" };

async function site(name: string) {
  await createSite(name);
  const agents = {
    sbc1: await TestAgent.enroll(name, "sbc1", "probe", { uplink: "isp1" }),
    sbc2: await TestAgent.enroll(name, "sbc2", "probe", { uplink: "isp2" }),
    srv1: await TestAgent.enroll(name, "srv1", "server"),
  };
  /** One heartbeat from each of these (agent, uplink) pairs at each second in [from, to). */
  const run = async (from: number, to: number, pairs: [keyof typeof agents, "isp1" | "isp2"][]) => {
    for (let t = from; t < to; t += 1_000) {
      at(t);
      for (const [a, u] of pairs) await agents[a].beat(u, { ip: IP[u] });
    }
  };
  return run;
}

describe("asymmetric failures", () => {
  it("a server cut off from an uplink that works for the others: the site stays consistent, and the event says why", async () => {
    const run = await site("asym");
    const all: [any, any][] = [
      ["sbc1", "isp1"],
      ["sbc2", "isp2"],
      ["srv1", "isp1"],
      ["srv1", "isp2"],
    ];
    await run(0, 10_000, all);
    await run(10_000, 20_000, [
      ["sbc1", "isp1"],
      ["sbc2", "isp2"],
      ["srv1", "isp2"],
    ]);
    const s = await status("asym");
    expect(s.activeUplink).toBe("isp1");
    expect(s.generation).toBe(1);
    expect(s.agents.find((a) => a.id === "srv1")!.uplinksSeen).toEqual(["isp2"]);
    const cut = (await events("asym")).filter((e) => e.kind === "agent-cut-off");
    expect(cut.map((e) => e.message)).toEqual([
      "srv1 is not heard through isp1, which is up for the rest of the site: its own path through isp1 is broken (LAN port, cable or policy routing); the site stays on isp1, and srv1 has no internet through it",
    ]);
    await run(20_000, 22_000, all);
    expect((await events("asym")).filter((e) => e.kind === "agent-path-back").map((e) => e.message)).toEqual([
      "srv1 is heard through isp1 again",
    ]);
  });

  it("a probe cut off while a server still gets through its uplink: the uplink stays up on the server's evidence, the probe is stale", async () => {
    const run = await site("asym-rev");
    await run(0, 10_000, [
      ["sbc1", "isp1"],
      ["sbc2", "isp2"],
      ["srv1", "isp1"],
      ["srv1", "isp2"],
    ]);
    await run(10_000, 20_000, [
      ["sbc2", "isp2"],
      ["srv1", "isp1"],
      ["srv1", "isp2"],
    ]);
    const s = await status("asym-rev");
    expect(s).toMatchObject({ activeUplink: "isp1", generation: 1 });
    expect(s.uplinks.find((u) => u.id === "isp1")!.state).toBe("up");
    const ev = await events("asym-rev");
    expect(ev.filter((e) => e.kind === "switch")).toHaveLength(1);
    expect(ev.find((e) => e.kind === "agent-stale")!.message).toMatch(/^sbc1 not heard for \d+ s$/);
    expect(ev.some((e) => e.kind === "agent-cut-off")).toBe(false);
  });

  it("an uplink down for everyone is no cut-off of one server", async () => {
    const run = await site("asym-down");
    await run(0, 10_000, [
      ["sbc1", "isp1"],
      ["sbc2", "isp2"],
      ["srv1", "isp1"],
      ["srv1", "isp2"],
    ]);
    await run(10_000, 20_000, [
      ["sbc2", "isp2"],
      ["srv1", "isp2"],
    ]);
    expect((await status("asym-down")).activeUplink).toBe("isp2");
    // Found in review: when it returns, the probe is heard first; the server must not look cut off meanwhile.
    at(20_000);
    await run(20_000, 21_000, [["sbc1", "isp1"]]);
    await run(21_000, 30_000, [
      ["sbc1", "isp1"],
      ["sbc2", "isp2"],
      ["srv1", "isp1"],
      ["srv1", "isp2"],
    ]);
    expect((await events("asym-down")).some((e) => /^agent-(cut-off|path-back)$/.test(e.kind))).toBe(false);
  });
});
