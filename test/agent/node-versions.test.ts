// The bundle on every Node it supports (18.19+, 20, 22), as a real process against the real edge;
// older Nodes are refused with one line.
import { execFileSync } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startLocalEdge, type LocalEdge } from "../../tools/local-edge.ts";
import { Daemon, NODE18, NODE20, NODE22, buildBundle, wanwatch } from "../../lab/agent-process.ts";
import { agentFiles, tempDir } from "./support.ts";

let edge: LocalEdge;
const SITE = "nodes";

beforeAll(async () => {
  buildBundle();
  edge = await startLocalEdge({ stateDir: tempDir("wanwatch-edge-") });
  await edge.api("PUT", `/v1/sites/${SITE}`, {
    uplinks: [
      { id: "isp1", priority: 1 },
      { id: "isp2", priority: 2 },
    ],
    policy: { heartbeatMs: 250, downAfterMs: 1000 },
  });
}, 90_000);

afterAll(async () => {
  await edge?.stop();
});

const nodes = [
  { name: "18", node: NODE18, agent: "on-node18" },
  { name: "20", node: NODE20, agent: "on-node20" },
  { name: "22", node: NODE22, agent: "on-node22" },
];

describe.each(nodes)("Node $name", ({ name, node, agent }) => {
  it("is the Node it claims to be", () => {
    expect(execFileSync(node, ["-p", "process.versions.node"], { encoding: "utf8" })).toMatch(
      new RegExp(`^${name}\\.`),
    );
  });

  it("agent run: heartbeats are accepted by the edge; doctor passes; SIGTERM stops it cleanly", async () => {
    const { secret } = await edge.api("POST", `/v1/sites/${SITE}/agents`, { id: agent, role: "probe", uplink: "isp1" });
    const f = agentFiles(
      { edge: edge.url, site: SITE, agent, role: "probe", uplinks: [{ id: "isp1", interface: "lo" }] },
      secret,
    );
    const d = Daemon.start(["agent", "run", "--config", f.configPath], { node });
    try {
      await d.waitFor((l) => l.msg === "edge answering", "an accepted heartbeat");
      const status = await edge.api("GET", `/v1/sites/${SITE}/status`);
      expect(status.agents.find((a: { id: string }) => a.id === agent).lastSeenAt).toBeGreaterThan(0);
      const doc = await wanwatch(["doctor", "--config", f.configPath], { node });
      expect(doc.stdout).not.toContain("✗");
      expect({ code: doc.code, stderr: doc.stderr }).toEqual({ code: 0, stderr: "" });
    } finally {
      d.child.kill("SIGTERM");
    }
    expect(await d.exit).toEqual({ code: 0, signal: null });
    expect(d.stderr).toBe("");
  });
});

it("a Node older than 18.19 is refused: exit 2, one line naming the version found and the one needed", async () => {
  // The real bundle on the real Node 18, told it is 18.18.2 before the bundle runs.
  const spoof = `data:text/javascript,Object.defineProperty(process,"versions",{value:{...process.versions,node:"18.18.2"}})`;
  const r = await wanwatch(["--version"], { node: NODE18, nodeArgs: ["--import", spoof] });
  expect(r.code).toBe(2);
  expect(r.stdout).toBe("");
  expect(r.stderr).toMatch(/^wanwatch needs Node 18\.19\.0 or newer; this is Node 18\.18\.2 \(.*node\)\n$/);
});
