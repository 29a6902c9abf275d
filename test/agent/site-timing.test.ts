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
/** When each heartbeat of probe p1 passed the proxy. */
const beats: number[] = [];

beforeAll(async () => {
  buildBundle();
  edge = await startLocalEdge({ stateDir: tempDir("wanwatch-edge-") });
  // HTTP heartbeats only (the proxy refuses WebSockets), so each one can be seen and timed.
  proxy = await httpOnlyProxy(edge.url, (req) => {
    if (req.url?.endsWith("/heartbeat") && req.headers["x-wanwatch-agent"] === "p1") beats.push(Date.now());
  });
}, 90_000);

afterAll(async () => {
  proxy?.close();
  await edge?.stop();
});

async function applyPolicy(heartbeatMs: number): Promise<void> {
  const file = join(tempDir(), "site.yaml");
  writeFileSync(
    file,
    `uplinks:\n  - { id: isp1, priority: 1 }\n  - { id: isp2, priority: 2 }\npolicy: { heartbeatMs: ${heartbeatMs}, downAfterMs: 3000, failbackAfterMs: 0, minDwellMs: 0 }\n`,
  );
  const r = await wanwatch(["site", "apply", file, "--edge", edge.url, "--site", SITE], {
    env: { WANWATCH_ADMIN_TOKEN: edge.adminToken },
  });
  expect(r.code, r.stderr).toBe(0);
}

/** The median gap between p1's heartbeats over the next `ms`. */
async function interval(ms: number): Promise<number> {
  const from = Date.now();
  await new Promise((r) => setTimeout(r, ms));
  const seen = beats.filter((t) => t >= from);
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
