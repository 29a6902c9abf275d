// The agent as a real process against the real edge (the Worker in workerd via wrangler dev).
import { createServer, request, type Server } from "node:http";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startLocalEdge, type LocalEdge } from "../../tools/local-edge.ts";
import { Daemon, NODE20, agentFiles, buildBundle, tempDir, wanwatch } from "./support.ts";

let edge: LocalEdge;
const SITE = "office";
const admin = () => ({ env: { WANWATCH_ADMIN_TOKEN: edge.adminToken } });
const at = () => ["--edge", edge.url, "--site", SITE];

beforeAll(async () => {
  buildBundle();
  edge = await startLocalEdge({ stateDir: tempDir("wanwatch-edge-") });
  const dir = tempDir();
  writeFileSync(
    join(dir, "site.yaml"),
    "uplinks:\n  - { id: isp1, priority: 1, name: Fiber }\n  - { id: isp2, priority: 2, name: LTE }\npolicy: { heartbeatMs: 250, downAfterMs: 1000, failbackAfterMs: 60000, minDwellMs: 0 }\ntunnels: { restart: per-server }\n",
  );
  const r = await wanwatch(["site", "apply", join(dir, "site.yaml"), ...at()], admin());
  expect(r.stderr).toBe("");
  expect(r.stdout).toContain("site office: config applied (isp1 p1, isp2 p2");
}, 90_000);

afterAll(async () => {
  await edge?.stop();
});

async function enroll(id: string, role: "probe" | "server", uplink?: string): Promise<string> {
  const r = await wanwatch(["site", "enroll", "--id", id, "--role", role, ...(uplink ? ["--uplink", uplink] : []), ...at(), "--json"], admin());
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout).secret;
}

async function siteStatus() {
  const r = await wanwatch(["site", "status", ...at(), "--json"], admin());
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout);
}

describe("agent ↔ real edge", () => {
  it("a server agent: heartbeats through both uplinks are accepted, directives are applied and reported, tunnels restarted once", async () => {
    const secret = await enroll("srv1", "server");
    const f = agentFiles({ edge: edge.url, site: SITE, agent: "srv1", role: "server", heartbeatMs: 250, switch: { backend: "none" }, uplinks: [{ id: "isp1", interface: "lo" }, { id: "isp2", interface: "lo" }] }, secret);
    const d = Daemon.start(["agent", "run", "--config", f.configPath]);
    try {
      await d.waitFor((l) => l.msg === "channel open" && l.uplink === "isp1", "isp1 channel");
      await d.waitFor((l) => l.msg === "channel open" && l.uplink === "isp2", "isp2 channel");
      const first = await d.waitFor((l) => l.msg === "directive applied", "first directive applied");

      // The edge has seen the agent through both uplinks and its acknowledgement.
      let s: any;
      for (let i = 0; i < 40; i++) {
        s = await siteStatus();
        const a = s.agents.find((x: any) => x.id === "srv1");
        if (a?.appliedGeneration === first.generation && a.uplinksSeen.length === 2) break;
        await new Promise((r) => setTimeout(r, 250));
      }
      const agent = s.agents.find((x: any) => x.id === "srv1");
      expect(agent).toMatchObject({ appliedGeneration: first.generation, lastError: null, version: expect.any(String) });
      expect([...agent.uplinksSeen].sort()).toEqual(["isp1", "isp2"]);

      // An operator pins isp2: the edge pushes a new generation with restartTunnels (per-server mode).
      const o = await wanwatch(["site", "override", "--uplink", "isp2", "--for", "120", "--reason", "e2e test", ...at()], admin());
      expect(o.code, o.stderr).toBe(0);
      const applied = await d.waitFor((l) => l.msg === "directive applied" && l.generation > first.generation, "override applied");
      await d.waitFor((l) => l.msg === "tunnels restarted" && l.generation === applied.generation, "tunnels restarted");
      await new Promise((r) => setTimeout(r, 1_000));
      expect(d.lines.filter((l) => l.msg === "restarting tunnels" && l.generation === applied.generation)).toHaveLength(1);

      const status = await wanwatch(["site", "status", ...at()], admin());
      expect(status.stdout).toMatch(/^site office: active uplink isp2, generation \d+, mode override/);
      expect(status.stdout).toMatch(/srv1\s+server\s+\d+s ago\s+isp1,isp2|srv1\s+server\s+\d+s ago\s+isp2,isp1/);
      const events = await wanwatch(["site", "events", "--limit", "20", ...at()], admin());
      expect(events.stdout).toContain(`srv1 applied generation ${applied.generation}`);
      expect(events.stdout).toContain(`srv1 restarted tunnels for generation ${applied.generation}`);

      const mine = await wanwatch(["agent", "status", "--config", f.configPath]);
      expect(mine.stdout).toContain(`directive: generation ${applied.generation}, active uplink isp2, restart tunnels`);
      expect(mine.stdout).toMatch(/isp1\s+websocket\s+\d+s ago/);
      expect(mine.stdout).toMatch(/isp2\s+websocket\s+\d+s ago/);

      const cleared = await wanwatch(["site", "override", "--clear", ...at()], admin());
      expect(cleared.code, cleared.stderr).toBe(0);
    } finally {
      d.child.kill("SIGTERM");
      expect(await d.exit).toEqual({ code: 0, signal: null });
    }
  });

  it("a probe on Node 20 falls back to HTTP heartbeats when WebSockets cannot pass, and the edge accepts them", async () => {
    const secret = await enroll("sbc1", "probe", "isp1");
    // A plain reverse proxy in front of the edge that cannot carry WebSockets (like some middleboxes).
    const target = new URL(edge.url);
    const proxy: Server = createServer((req, res) => {
      const up = request({ host: target.hostname, port: target.port, path: req.url, method: req.method, headers: req.headers }, (r) => {
        res.writeHead(r.statusCode ?? 502, r.headers);
        r.pipe(res);
      });
      up.on("error", () => res.writeHead(502).end());
      req.pipe(up);
    });
    proxy.on("upgrade", (_req, socket) => socket.end("HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\n\r\n"));
    await new Promise<void>((r) => proxy.listen(0, "127.0.0.1", r));
    const port = (proxy.address() as { port: number }).port;
    const f = agentFiles({ edge: `http://127.0.0.1:${port}`, site: SITE, agent: "sbc1", role: "probe", heartbeatMs: 250, uplinks: [{ id: "isp1", interface: "lo" }] }, secret);
    const d = Daemon.start(["agent", "run", "--config", f.configPath], { node: NODE20 });
    try {
      await d.waitFor((l) => String(l.msg).startsWith("WebSocket refused by the edge (HTTP 502)"), "websocket refused");
      await d.waitFor((l) => l.msg === "edge answering" && l.transport === "http", "http heartbeats answered");
      // The refusal is logged once, not at every reconnect attempt.
      await new Promise((r) => setTimeout(r, 2_000));
      expect(d.lines.filter((l) => String(l.msg).startsWith("WebSocket"))).toHaveLength(1);
      await d.waitFor((l) => l.msg === "new directive (probe: nothing to apply)", "directive recorded");
      const s = await siteStatus();
      const probe = s.agents.find((x: any) => x.id === "sbc1");
      expect(probe.uplinksSeen).toEqual(["isp1"]);
      expect(probe.appliedGeneration).toBeNull();
      const mine = await wanwatch(["agent", "status", "--config", f.configPath]);
      expect(mine.stdout).toMatch(/isp1\s+http\s+\d+s ago/);
    } finally {
      d.child.kill("SIGTERM");
      expect(await d.exit).toEqual({ code: 0, signal: null });
      proxy.close();
    }
  });

  it("with the wrong secret nothing is accepted either way, and nothing is applied", async () => {
    await enroll("srv2", "server");
    const f = agentFiles({ edge: edge.url, site: SITE, agent: "srv2", role: "server", heartbeatMs: 250, uplinks: [{ id: "isp1", interface: "lo" }, { id: "isp2", interface: "lo" }] }, "not-the-secret-the-edge-issued-000");
    const d = Daemon.start(["agent", "run", "--config", f.configPath]);
    try {
      await d.waitFor((l) => String(l.msg).includes("bad_signature"), "bad signature refusal");
      await new Promise((r) => setTimeout(r, 1_000));
      expect(d.lines.some((l) => l.msg === "new directive" || l.msg === "directive applied")).toBe(false);
      const s = await siteStatus();
      expect(s.agents.find((x: any) => x.id === "srv2").lastSeenAt).toBeNull();
    } finally {
      d.child.kill("SIGTERM");
      expect((await d.exit).code).toBe(0);
    }
  });

  it("doctor: the edge is reachable through each uplink, the clock is close, the secret is private", async () => {
    const f = agentFiles({ edge: edge.url, site: SITE, agent: "srv1", role: "server", uplinks: [{ id: "isp1", interface: "lo" }, { id: "isp2", interface: "lo" }] });
    const r = await wanwatch(["doctor", "--config", f.configPath]);
    expect(r.stdout).toMatch(/^✓ edge reachable through isp1 \(from 127\.0\.0\.1\): \d+ ms$/m);
    expect(r.stdout).toMatch(/^✓ edge reachable through isp2 \(from 127\.0\.0\.1\): \d+ ms$/m);
    expect(r.stdout).toMatch(/^✓ clock skew vs edge: -?\d+\.\d s$/m);
    expect(r.stdout).toMatch(/^✓ secret file .*: mode 0600$/m);
    // ip is a requirement of server agents; whether this machine has it decides the exit code.
    const lines = r.stdout.trim().split("\n");
    expect(lines.every((l) => /^[✓✗] /.test(l))).toBe(true);
    expect(r.code).toBe(lines.some((l) => l.startsWith("✗")) ? 1 : 0);
  });

  it("when the edge goes away the agent keeps its routes, falls back, and reconnects when it returns", async () => {
    const secret = await enroll("srv3", "server");
    const f = agentFiles({ edge: edge.url, site: SITE, agent: "srv3", role: "server", heartbeatMs: 250, uplinks: [{ id: "isp1", interface: "lo" }, { id: "isp2", interface: "lo" }] }, secret);
    const d = Daemon.start(["agent", "run", "--config", f.configPath]);
    try {
      await d.waitFor((l) => l.msg === "directive applied", "first directive applied");
      const applies = () => d.lines.filter((l) => l.msg === "applying directive").length;
      const before = applies();
      await edge.stop();
      await d.waitFor((l) => String(l.msg).startsWith("channel closed") && l.uplink === "isp1", "isp1 closed");
      await d.waitFor((l) => String(l.msg).startsWith("HTTP heartbeat failed (unreachable") || String(l.msg).startsWith("WebSocket to the edge failed"), "edge unreachable");
      await new Promise((r) => setTimeout(r, 1_000));
      // Unreachable through every uplink: nothing is switched on the agent's own evidence.
      expect(applies()).toBe(before);
      const reopened = d.lines.length;
      await edge.restart();
      await d.waitFor((l) => l.msg === "channel open" && l.uplink === "isp1" && d.lines.indexOf(l) >= reopened, "isp1 reconnected", 40_000);
      await d.waitFor((l) => l.msg === "channel open" && l.uplink === "isp2" && d.lines.indexOf(l) >= reopened, "isp2 reconnected", 40_000);
    } finally {
      d.child.kill("SIGTERM");
      expect((await d.exit).code).toBe(0);
    }
  }, 120_000);

  it("a revoked agent's channels are closed by the edge and its heartbeats refused", async () => {
    const secret = await enroll("srv4", "server");
    const f = agentFiles({ edge: edge.url, site: SITE, agent: "srv4", role: "server", heartbeatMs: 250, uplinks: [{ id: "isp1", interface: "lo" }, { id: "isp2", interface: "lo" }] }, secret);
    const d = Daemon.start(["agent", "run", "--config", f.configPath]);
    try {
      await d.waitFor((l) => l.msg === "channel open" && l.uplink === "isp1", "isp1 open");
      const r = await wanwatch(["site", "revoke", "--id", "srv4", ...at()], admin());
      expect(r.code, r.stderr).toBe(0);
      await d.waitFor((l) => String(l.msg).startsWith("channel closed (4401"), "closed as revoked");
      await d.waitFor((l) => String(l.msg).includes("unknown_agent"), "heartbeats refused");
    } finally {
      d.child.kill("SIGTERM");
      expect((await d.exit).code).toBe(0);
    }
  });
});
