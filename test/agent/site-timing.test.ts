// One source of timing: the site's policy.heartbeatMs reaches every running agent with the edge's
// answers, and the agents follow it within a heartbeat, without a restart and without the site
// seeing any uplink change. Heartbeats are counted on the wire, through a proxy in front of the edge.
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { startLocalEdge, type LocalEdge } from "../../tools/local-edge.ts";
import { Daemon, buildBundle, wanwatch } from "../../lab/agent-process.ts";
import { agentFiles, httpOnlyProxy, tempDir } from "./support.ts";

const SITE = "timing";
let edge: LocalEdge;
let proxy: Awaited<ReturnType<typeof httpOnlyProxy>>;
/** When each heartbeat of each agent passed the proxy. */
const beatsOf = new Map<string, number[]>();
const beats: number[] = [];
beatsOf.set("p1", beats);

beforeAll(async () => {
  buildBundle();
  edge = await startLocalEdge({ stateDir: tempDir("wanwatch-edge-") });
  // HTTP heartbeats only (the proxy refuses WebSockets), so each one can be seen and timed.
  proxy = await httpOnlyProxy(edge.url, (req) => {
    const agent = String(req.headers["x-wanwatch-agent"]);
    if (req.url?.endsWith("/heartbeat")) beatsOf.get(agent)?.push(Date.now()) ?? beatsOf.set(agent, [Date.now()]);
  });
}, 90_000);

afterAll(async () => {
  proxy?.close();
  await edge?.stop();
});

async function applyPolicy(heartbeatMs: number, site = SITE, metered = ""): Promise<void> {
  const file = join(tempDir(), "site.yaml");
  writeFileSync(
    file,
    `uplinks:\n  - { id: isp1, priority: 1 }\n  - { id: isp2, priority: 2${metered ? ", metered: true" : ""} }\npolicy: { heartbeatMs: ${heartbeatMs}, downAfterMs: 3000, failbackAfterMs: 0, minDwellMs: 0${metered} }\n`,
  );
  const r = await wanwatch(["site", "apply", file, "--edge", edge.url, "--site", site], {
    env: { WANWATCH_ADMIN_TOKEN: edge.adminToken },
  });
  expect(r.code, r.stderr).toBe(0);
}

/** The median gap between an agent's heartbeats over the next `ms`. */
async function interval(ms: number, agent = "p1"): Promise<number> {
  const from = Date.now();
  await new Promise((r) => setTimeout(r, ms));
  const seen = (beatsOf.get(agent) ?? []).filter((t) => t >= from);
  const gaps = seen
    .slice(1)
    .map((t, i) => t - seen[i]!)
    .sort((a, b) => a - b);
  return gaps[Math.floor(gaps.length / 2)] ?? Infinity;
}

it("the site's heartbeatMs 1000 → 500 → 1000 ms: running agents follow within a heartbeat; no uplink changes, no switch", async () => {
  await applyPolicy(1000);
  const agents: Daemon[] = [];
  try {
    for (const [id, uplink] of [
      ["p1", "isp1"],
      ["p2", "isp2"],
    ] as const) {
      const { secret } = await edge.api("POST", `/v1/sites/${SITE}/agents`, { id, role: "probe", uplink });
      // Installed with 2 s: a bootstrap value only, until the edge's first answer.
      const f = agentFiles(
        {
          edge: proxy.url,
          site: SITE,
          agent: id,
          role: "probe",
          heartbeatMs: 2000,
          uplinks: [{ id: uplink, interface: "lo" }],
        },
        secret,
      );
      agents.push(Daemon.start(["agent", "run", "--config", f.configPath]));
    }
    const [p1] = agents as [Daemon];
    await p1.waitFor(
      (l) => l.msg === "heartbeat interval from the site's policy" && l.toMs === 1000,
      "the site's 1 s adopted",
    );
    await new Promise((r) => setTimeout(r, 3_500)); // both uplinks heard, the site settled
    const settled = await edge.api("GET", `/v1/sites/${SITE}/status`);
    expect(settled.uplinks.map((u: { state: string }) => u.state)).toEqual(["up", "up"]);
    const eventsBefore = (await edge.api("GET", `/v1/sites/${SITE}/events?limit=1000`)).length;
    expect(await interval(4_000)).toBeGreaterThan(900);

    const changedAt = Date.now();
    await applyPolicy(500);
    const adopted = await p1.waitFor(
      (l) => l.msg === "heartbeat interval from the site's policy" && l.toMs === 500,
      "500 ms adopted",
      5_000,
    );
    // Within one heartbeat of the old interval (plus the answer's way back).
    expect(Date.parse(adopted.time) - changedAt).toBeLessThan(1_500);
    const fast = await interval(4_000);
    expect(fast).toBeGreaterThan(400);
    expect(fast).toBeLessThan(600);

    await applyPolicy(1000);
    await p1.waitFor(
      (l) => l.msg === "heartbeat interval from the site's policy" && l.toMs === 1000 && Date.parse(l.time) > changedAt,
      "back to 1 s",
      5_000,
    );
    expect(await interval(4_000)).toBeGreaterThan(900);

    const events = (await edge.api("GET", `/v1/sites/${SITE}/events?limit=1000`)) as { kind: string }[];
    expect(events.slice(0, events.length - eventsBefore).map((e) => e.kind)).toEqual(["config", "config"]);
    const after = await edge.api("GET", `/v1/sites/${SITE}/status`);
    expect(after.uplinks.map((u: { state: string }) => u.state)).toEqual(["up", "up"]);
    expect(after.generation).toBe(settled.generation);
    for (const a of agents) expect(a.child.exitCode).toBeNull();
  } finally {
    for (const a of agents) a.child.kill("SIGTERM");
  }
  for (const a of agents) expect((await a.exit).code).toBe(0);
}, 60_000);

it("a metered standby: its probe heartbeats at meteredHeartbeatMs, at the site's rate while it is active, slowly again after", async () => {
  const site = "timing-metered";
  await applyPolicy(1000, site, ", meteredHeartbeatMs: 3000");
  const agents: Daemon[] = [];
  try {
    for (const [id, uplink] of [
      ["m1", "isp1"],
      ["m2", "isp2"],
    ] as const) {
      const { secret } = await edge.api("POST", `/v1/sites/${site}/agents`, { id, role: "probe", uplink });
      const f = agentFiles(
        {
          edge: proxy.url,
          site,
          agent: id,
          role: "probe",
          heartbeatMs: 1000,
          uplinks: [{ id: uplink, interface: "lo" }],
        },
        secret,
      );
      agents.push(Daemon.start(["agent", "run", "--config", f.configPath]));
    }
    const m2 = agents[1]!;
    await m2.waitFor((l) => l.msg === "heartbeat interval" && l.toMs === 3000, "the standby slowed");
    const slow = await interval(10_000, "m2");
    expect(slow).toBeGreaterThan(2_700);
    expect(slow).toBeLessThan(3_300);
    expect(await interval(3_000, "m1")).toBeLessThan(1_100);
    expect((await edge.api("GET", `/v1/sites/${site}/status`)).uplinks.map((u: { state: string }) => u.state)).toEqual([
      "up",
      "up",
    ]);

    // Made active (an override): the next answer puts it at the site's rate.
    await edge.api("POST", `/v1/sites/${site}/override`, { uplink: "isp2", forSeconds: 60, reason: "test" });
    await m2.waitFor((l) => l.msg === "heartbeat interval" && l.toMs === 1000, "the active uplink at full rate", 5_000);
    const fast = await interval(3_000, "m2");
    expect(fast).toBeLessThan(1_100);
    await edge.api("DELETE", `/v1/sites/${site}/override`);
    await m2.waitFor(
      (l) => l.msg === "heartbeat interval" && l.toMs === 3000 && l.fromMs === 1000,
      "slow again on standby",
      5_000,
    );
  } finally {
    for (const a of agents) a.child.kill("SIGTERM");
  }
  for (const a of agents) expect((await a.exit).code).toBe(0);
}, 60_000);
