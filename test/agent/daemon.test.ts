import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { createServer, type Socket } from "node:net";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { labUnavailable, type Netns } from "../../lab/netns.ts";
import { createTwoLanHost } from "../../lab/two-lan-host.ts";
import { Daemon, buildBundle, wanwatch } from "../../lab/agent-process.ts";
import { agentFiles } from "./support.ts";

// Server agents install policy routing and switch routes: only inside a namespace of the test's own.
const noLab = labUnavailable();
let host: { ns: Netns; destroy: () => Promise<void> } | null = null;
beforeAll(async () => {
  buildBundle();
  if (!noLab) host = await createTwoLanHost();
});
afterAll(async () => {
  await host?.destroy();
});
const inHost = () => ({ netns: host!.ns.name });
const routeDev = async (...get: string[]) =>
  (JSON.parse(await host!.ns.ip("-j", "-4", "route", "get", ...get)) as { dev: string }[])[0]!.dev;

// Nothing listens on port 2: the edge is unreachable through every uplink.
const UNREACHABLE = "http://127.0.0.1:2";
// For a server in its namespace: an address behind both LANs' gateways, where nobody answers.
const UNREACHABLE_EDGE = "http://203.0.113.10:2";
const SECRET = "daemon-test-secret-value-0123456789";

function server(extra: Record<string, unknown> = {}) {
  return agentFiles(
    {
      edge: UNREACHABLE_EDGE,
      site: "office",
      agent: "srv1",
      role: "server",
      heartbeatMs: 250,
      switch: { backend: "iproute2" },
      uplinks: [
        { id: "isp1", interface: "lan1" },
        { id: "isp2", interface: "lan2" },
      ],
      ...extra,
    },
    SECRET,
  );
}

describe.skipIf(noLab)(`server agent daemon (edge unreachable)${noLab ? ` — skipped: ${noLab}` : ""}`, () => {
  it("resumes from its state file: applies the saved directive it had not applied yet, and keeps it", async () => {
    const f = server();
    mkdirSync(f.stateDir, { recursive: true });
    writeFileSync(
      join(f.stateDir, "state.json"),
      JSON.stringify({
        version: 1,
        directive: { generation: 3, activeUplink: "isp2", restartTunnels: false },
        appliedGeneration: 2,
        tunnelGeneration: 2,
        lastError: null,
        savedAt: 0,
      }),
    );
    expect(await routeDev("203.0.113.10")).toBe("lan1");
    // What a killed run of an older agent left: everything from isp1's address pinned to lan1.
    await host!.ns.ip("rule", "add", "from", "192.168.1.21/32", "lookup", "1101", "priority", "1101");
    const d = Daemon.start(["agent", "run", "--config", f.configPath], inHost());
    await d.waitFor((l) => l.msg === "resumed saved state" && l.appliedGeneration === 2, "resume");
    await d.waitFor((l) => l.msg === "per-uplink routing installed", "policy routing");
    // Each uplink's source address routes the agent's connections to the edge through its own
    // LAN, whatever the default route; nothing else from it is pinned (the leftover is gone).
    expect(await routeDev("203.0.113.10", "from", "192.168.2.21", "ipproto", "tcp", "dport", "2")).toBe("lan2");
    expect((await host!.ns.ip("rule", "show")).split("\n").filter((l) => /lookup 110[12]/.test(l))).toEqual([
      "1101:\tfrom 192.168.1.21 to 203.0.113.10 ipproto tcp dport 2 lookup 1101",
      "1102:\tfrom 192.168.2.21 to 203.0.113.10 ipproto tcp dport 2 lookup 1102",
    ]);
    await d.waitFor((l) => l.msg === "directive applied" && l.generation === 3, "apply of generation 3");
    expect(await routeDev("203.0.113.10")).toBe("lan2");
    await d.waitFor((l) => String(l.msg).startsWith("HTTP heartbeat failed (unreachable"), "heartbeat failure logged");
    const saved = JSON.parse(readFileSync(join(f.stateDir, "state.json"), "utf8"));
    expect(saved).toMatchObject({
      appliedGeneration: 3,
      tunnelGeneration: 2,
      directive: { generation: 3, activeUplink: "isp2" },
    });

    // The host's view while running.
    const st = await wanwatch(["agent", "status", "--config", f.configPath]);
    expect(st.code).toBe(0);
    expect(st.stdout).toContain("daemon: running");
    expect(st.stdout).toContain("directive: generation 3, active uplink isp2");
    expect(st.stdout).toContain("applied generation: 3 (up to date)");
    expect(st.stdout).toMatch(/isp1\s+down\s+never/);
    // doctor sees the backup's traffic leave through its own LAN (then finds no edge there).
    const doc = await wanwatch(["doctor", "--config", f.configPath], inHost());
    expect(doc.stdout).not.toContain("per-uplink routing is not installed");
    expect(doc.stdout).toMatch(/^✗ heartbeat through isp2 \(from 192\.168\.2\.21\): edge unreachable /m);

    d.child.kill("SIGTERM");
    expect(await d.exit).toEqual({ code: 0, signal: null });
    expect(d.lines.at(-1)).toMatchObject({ msg: "stopped" });
    // One decision per line, and nothing secret in any of them.
    const all = d.lines.map((l) => JSON.stringify(l)).join("\n");
    expect(all).not.toContain(SECRET);
    expect(all).not.toMatch(/"sig"|signature/i);
    for (const l of d.lines) expect(l).toHaveProperty("msg");
    // A per-uplink problem is logged once, not once per heartbeat.
    expect(d.lines.filter((l) => l.uplink === "isp1" && String(l.msg).startsWith("HTTP heartbeat failed")).length).toBe(
      1,
    );

    // Stopping removes the policy routing and leaves the switched default route.
    expect(await host!.ns.ip("rule", "show")).not.toMatch(/lookup 110[12]/);
    expect(await routeDev("203.0.113.10")).toBe("lan2");

    const status = JSON.parse(readFileSync(join(f.stateDir, "status.json"), "utf8"));
    expect(status.stoppedAt).toBeTypeOf("number");
    const after = await wanwatch(["agent", "status", "--config", f.configPath]);
    expect(after.stdout).toContain("daemon: not running");
    // Without the agent, doctor says why the backup cannot reach the edge instead of testing the wrong path.
    const doc2 = await wanwatch(["doctor", "--config", f.configPath], inHost());
    expect(doc2.code).toBe(1);
    expect(doc2.stdout).toContain(
      "✗ heartbeat through isp1: traffic from 192.168.1.21 to the edge leaves through lan2, not lan1: per-uplink routing is not installed (the agent installs it while it runs)",
    );
  });

  it("a second run with nothing left to do changes nothing and applies nothing", async () => {
    const f = server();
    // Nothing left: the saved directive is applied and the host's routes agree with it.
    const uplink = (await routeDev("203.0.113.10")) === "lan1" ? "isp1" : "isp2";
    mkdirSync(f.stateDir, { recursive: true });
    writeFileSync(
      join(f.stateDir, "state.json"),
      JSON.stringify({
        version: 1,
        directive: { generation: 5, activeUplink: uplink, restartTunnels: true },
        appliedGeneration: 5,
        tunnelGeneration: 5,
        lastError: null,
        savedAt: 0,
      }),
    );
    const d = Daemon.start(["agent", "run", "--config", f.configPath], inHost());
    await d.waitFor((l) => l.msg === "running", "running");
    await new Promise((r) => setTimeout(r, 700));
    d.child.kill("SIGINT");
    expect(await d.exit).toEqual({ code: 0, signal: null });
    expect(d.lines.some((l) => l.msg === "applying directive" || l.msg === "restarting tunnels")).toBe(false);
  });

  it("a host whose routes left the applied directive while it was down (a reboot, a DHCP renewal) is put back at start, before the edge answers", async () => {
    const f = server();
    mkdirSync(f.stateDir, { recursive: true });
    writeFileSync(
      join(f.stateDir, "state.json"),
      JSON.stringify({
        version: 1,
        directive: { generation: 8, activeUplink: "isp1", restartTunnels: false },
        appliedGeneration: 8,
        tunnelGeneration: null,
        lastError: null,
        savedAt: 0,
      }),
    );
    // What a reboot leaves: the other LAN's default route preferred.
    await host!.ns.ip("route", "replace", "default", "via", "192.168.2.1", "dev", "lan2", "metric", "10");
    expect(await routeDev("203.0.113.10")).toBe("lan2");
    const d = Daemon.start(["agent", "run", "--config", f.configPath], inHost());
    const repaired = await d.waitFor((l) => l.msg === "route drift repaired", "the drift repaired");
    expect(repaired).toMatchObject({ routedUplink: "isp2", activeUplink: "isp1" });
    expect(await routeDev("203.0.113.10")).toBe("lan1");
    // Still nothing heard from the edge: the saved directive alone put the host right.
    expect(d.lines.some((l) => l.msg === "new directive")).toBe(false);
    // A change by hand while it runs is put back too, at once.
    await host!.ns.ip("route", "replace", "default", "via", "192.168.2.1", "dev", "lan2", "metric", "10");
    await d.waitFor((l) => l.msg === "route drift repaired" && l !== repaired, "the second drift repaired");
    expect(await routeDev("203.0.113.10")).toBe("lan1");
    d.child.kill("SIGTERM");
    expect(await d.exit).toEqual({ code: 0, signal: null });
    expect(await host!.ns.ip("-4", "route", "show", "default")).not.toMatch(/metric 10(?!\d)/);
  });

  it("SIGTERM mid-apply (a tunnel restart still running): exits 0, and the next start resumes it", async () => {
    // The first run's restart hangs; the second run's succeeds.
    const f = server();
    const marker = join(f.dir, "first-run-done");
    const script = join(f.dir, "restart.sh");
    writeFileSync(script, `#!/bin/sh\nif [ -e ${marker} ]; then exit 0; fi\ntouch ${marker}\nexec sleep 30\n`, {
      mode: 0o755,
    });
    const config = JSON.parse(readFileSync(f.configPath, "utf8"));
    writeFileSync(f.configPath, JSON.stringify({ ...config, tunnels: { restart: "command", command: [script] } }));
    mkdirSync(f.stateDir, { recursive: true });
    writeFileSync(
      join(f.stateDir, "state.json"),
      JSON.stringify({
        version: 1,
        directive: { generation: 7, activeUplink: "isp1", restartTunnels: true },
        appliedGeneration: 6,
        tunnelGeneration: 6,
        lastError: null,
        savedAt: 0,
      }),
    );

    const first = Daemon.start(["agent", "run", "--config", f.configPath], inHost());
    await first.waitFor((l) => l.msg === "restarting tunnels" && l.generation === 7, "tunnel restart under way");
    first.child.kill("SIGTERM");
    expect(await first.exit).toEqual({ code: 0, signal: null });
    expect(JSON.parse(readFileSync(join(f.stateDir, "state.json"), "utf8"))).toMatchObject({
      appliedGeneration: 7,
      tunnelGeneration: 6,
    });

    const second = Daemon.start(["agent", "run", "--config", f.configPath], inHost());
    await second.waitFor(
      (l) => l.msg === "tunnels restarted" && l.generation === 7,
      "the restart resumed and finished",
    );
    expect(second.lines.some((l) => l.msg === "applying directive")).toBe(false); // routes were already done
    second.child.kill("SIGTERM");
    expect((await second.exit).code).toBe(0);
    expect(JSON.parse(readFileSync(join(f.stateDir, "state.json"), "utf8"))).toMatchObject({
      appliedGeneration: 7,
      tunnelGeneration: 7,
    });
  }, 40_000);

  it("SIGTERM twice: handled once, exits 0", async () => {
    const f = server();
    const d = Daemon.start(["agent", "run", "--config", f.configPath], inHost());
    await d.waitFor((l) => l.msg === "running", "running");
    d.child.kill("SIGTERM");
    d.child.kill("SIGTERM");
    expect(await d.exit).toEqual({ code: 0, signal: null });
    expect(d.lines.filter((l) => l.msg === "stopping")).toHaveLength(1);
  });
});

describe("agent daemon on this host (a probe changes no routes)", () => {
  it("a probe starts with one uplink and records no applied generation", async () => {
    const f = agentFiles(
      {
        edge: UNREACHABLE,
        site: "office",
        agent: "sbc1",
        role: "probe",
        heartbeatMs: 250,
        uplinks: [{ id: "isp1", interface: "lo" }],
      },
      SECRET,
    );
    const d = Daemon.start(["agent", "run", "--config", f.configPath]);
    await d.waitFor((l) => l.msg === "running", "running");
    expect(d.lines.some((l) => l.msg === "per-uplink routing installed")).toBe(false);
    d.child.kill("SIGTERM");
    expect((await d.exit).code).toBe(0);
  });

  it("an unreadable secret stops startup with exit 2 and one line", async () => {
    const f = agentFiles({
      edge: UNREACHABLE,
      site: "office",
      agent: "sbc1",
      role: "probe",
      uplinks: [{ id: "isp1", interface: "lo" }],
      secretFile: "/nonexistent/secret",
    });
    const r = await wanwatch(["agent", "run", "--config", f.configPath]);
    expect(r.code).toBe(2);
    expect(r.stderr.trim()).toBe("secretFile: /nonexistent/secret does not exist");
  });

  it("SIGTERM while the WebSocket handshake and an HTTP heartbeat hang: exits 0 promptly", async () => {
    // An edge that accepts connections and never answers: both transports stay mid-request.
    const sockets: Socket[] = [];
    const blackhole = createServer((s) => sockets.push(s));
    await new Promise<void>((r) => blackhole.listen(0, "127.0.0.1", r));
    const f = agentFiles(
      {
        edge: `http://127.0.0.1:${(blackhole.address() as { port: number }).port}`,
        site: "office",
        agent: "sbc1",
        role: "probe",
        heartbeatMs: 250,
        uplinks: [{ id: "isp1", interface: "lo" }],
      },
      SECRET,
    );
    const d = Daemon.start(["agent", "run", "--config", f.configPath]);
    try {
      await d.waitFor((l) => l.msg === "running", "running");
      // Wait until a WebSocket upgrade and an HTTP heartbeat are both in flight.
      for (let i = 0; i < 50 && sockets.length < 2; i++) await new Promise((r) => setTimeout(r, 100));
      expect(sockets.length).toBeGreaterThanOrEqual(2);
      const t0 = Date.now();
      d.child.kill("SIGTERM");
      expect(await d.exit).toEqual({ code: 0, signal: null });
      // Promptly: it cancels what hangs rather than waiting it out (the hard-exit timer is 10 s);
      // the bound leaves a busy machine room below that, and the time is printed.
      console.log(`exited ${Date.now() - t0} ms after SIGTERM`);
      expect(Date.now() - t0).toBeLessThan(8_000);
      expect(d.lines.at(-1)).toMatchObject({ msg: "stopped" });
    } finally {
      for (const s of sockets) s.destroy();
      blackhole.close();
    }
  });
});
