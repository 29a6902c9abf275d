// Tunnel restarts with real processes: the stand-in tunnel client restarted by the `command`
// backend, and `systemctl`/`docker`/`kubectl` stand-ins on PATH that record how they were called
// (the argv is what those tools would get; a real Docker Swarm runs in swarm-lab.test.ts, as root).
import { spawn } from "node:child_process";
import { chmodSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { TunnelConfig } from "../../agent/src/config/schema.ts";
import { createTunnelRestarter } from "../../agent/src/host/tunnels.ts";
import { describeError } from "../../agent/src/lib/errors.ts";
import { freePort } from "../../tools/local-edge.ts";
import { alive, waitUntil } from "../../lab/netns.ts";
import { Daemon, NODE22, ROOT } from "../../lab/agent-process.ts";
import { tempDir } from "./support.ts";

const dir = tempDir("wanwatch-tunnels-");
const pidFile = join(dir, "tunnel.pid");
const restartScript = join(ROOT, "test/fixtures/restart-tunnel.sh");
let endpoint: Daemon;
let client: string[];
let readyUrl: string;
const savedPath = process.env.PATH;

beforeAll(async () => {
  endpoint = new Daemon(
    spawn(NODE22, [join(ROOT, "test/fixtures/tunnel-endpoint.mjs"), "--host", "127.0.0.1", "--port", "0"], {
      stdio: ["ignore", "pipe", "pipe"],
    }),
  );
  const { port } = await endpoint.waitFor((l) => l.event === "listening", "endpoint");
  const readyPort = await freePort();
  readyUrl = `http://127.0.0.1:${readyPort}/ready`;
  client = [
    NODE22,
    join(ROOT, "test/fixtures/tunnel-client.mjs"),
    "--connect",
    `127.0.0.1:${port}`,
    "--ready-port",
    String(readyPort),
    "--pid-file",
    pidFile,
  ];
  // Shims: record argv; systemctl really restarts the stand-in, the others only record.
  mkdirSync(join(dir, "worker"));
  writeFileSync(
    join(dir, "systemctl"),
    `#!/bin/sh\necho "systemctl $*" >> ${dir}/calls\nexec ${restartScript} ${pidFile} ${client.join(" ")}\n`,
  );
  for (const tool of ["docker", "kubectl"])
    writeFileSync(join(dir, tool), `#!/bin/sh\necho "${tool} $*" >> ${dir}/calls\n`);
  // A docker on a Swarm worker (or on no swarm at all, with SWARM_STATE=inactive): `docker info` and the daemon's refusal.
  writeFileSync(
    join(dir, "worker", "docker"),
    `#!/bin/sh\necho "docker $*" >> ${dir}/calls\ncase "$1" in info) echo "\${SWARM_STATE:-active} false" ;; *) echo "Error response from daemon: This node is not a swarm manager. Worker nodes can't be used to view or modify cluster state." >&2; exit 1 ;; esac\n`,
  );
  writeFileSync(
    join(dir, "fails"),
    `#!/bin/sh\necho "starting" ; echo "unit cloudflared.service not found" >&2; exit 5\n`,
  );
  writeFileSync(join(dir, "hangs"), `#!/bin/sh\nexec sleep 60\n`);
  for (const f of ["systemctl", "docker", "kubectl", "fails", "hangs", "worker/docker"]) chmodSync(join(dir, f), 0o755);
  process.env.PATH = `${dir}:${savedPath}`;
});

afterEach(() => rmSync(join(dir, "calls"), { force: true }));

afterAll(async () => {
  process.env.PATH = savedPath;
  const pid = Number(readFileSync(pidFile, "utf8"));
  if (pid && alive(pid)) process.kill(pid, "SIGTERM");
  endpoint.child.kill("SIGTERM");
  rmSync(dir, { recursive: true, force: true });
});

const running = new AbortController().signal;
const restarter = (t: object) => createTunnelRestarter(TunnelConfig.parse(t));
const calls = () => readFileSync(join(dir, "calls"), "utf8").trim().split("\n");
const connects = () => endpoint.lines.filter((l) => l.event === "connect").length;
const ready = async () => (await fetch(readyUrl).catch(() => null))?.status === 200;
const failure = (p: Promise<void>) =>
  p.then(
    () => "resolved",
    (e: Error) => e.message,
  );

describe("tunnel restart", () => {
  it("command: the stand-in tunnel reconnects, and the restart resolves only once /ready answers 200", async () => {
    await restarter({ restart: "command", command: [restartScript, pidFile, ...client], readyUrl }).restart(running);
    await waitUntil(() => connects() >= 1, "first connection");
    const pid = Number(readFileSync(pidFile, "utf8"));
    const before = connects();
    await restarter({ restart: "command", command: [restartScript, pidFile, ...client], readyUrl }).restart(running);
    expect(await ready()).toBe(true);
    expect(Number(readFileSync(pidFile, "utf8"))).not.toBe(pid);
    expect(alive(pid)).toBe(false);
    expect(connects()).toBe(before + 1);
    expect(endpoint.lines.filter((l) => l.event === "close").length).toBeGreaterThanOrEqual(1);
  });

  it("systemd: `systemctl restart UNIT`, waiting for readiness", async () => {
    const before = connects();
    await restarter({ restart: "systemd", service: "cloudflared.service", readyUrl }).restart(running);
    expect(calls()).toEqual(["systemctl restart cloudflared.service"]);
    expect(connects()).toBe(before + 1);
  });

  it("swarm: `docker service update --force SERVICE`", async () => {
    await restarter({ restart: "swarm", service: "cloudflared_tunnel" }).restart(running);
    expect(calls()).toEqual(["docker service update --force cloudflared_tunnel"]);
  });

  it("swarm on a node that is not a manager: the failure says so and what to enrol instead", async () => {
    process.env.PATH = `${dir}/worker:${dir}:${savedPath}`;
    try {
      // What the agent reports to the edge (lastError): the explanation, then docker's own line.
      expect(
        await restarter({ restart: "swarm", service: "cloudflared" })
          .restart(running)
          .then(() => "resolved", describeError),
      ).toBe(
        'this node is a Docker Swarm worker: only a manager can restart service "cloudflared" (enrol a manager node as the tunnel restarter, and this one without --tunnel-restarter): ' +
          "`docker service update --force cloudflared` failed (exit 1): Error response from daemon: This node is not a swarm manager. Worker nodes can't be used to view or modify cluster state.",
      );
      expect(calls()).toEqual([
        "docker service update --force cloudflared",
        "docker info --format {{.Swarm.LocalNodeState}} {{.Swarm.ControlAvailable}}",
      ]);
      process.env.SWARM_STATE = "inactive";
      expect(await failure(restarter({ restart: "swarm", service: "cloudflared" }).restart(running))).toMatch(
        /^this node is not in a Docker Swarm: service "cloudflared" can only be restarted on a manager node$/,
      );
    } finally {
      process.env.PATH = `${dir}:${savedPath}`;
      delete process.env.SWARM_STATE;
    }
  });

  it("kubernetes: rollout restart, then rollout status bounded by the time left", async () => {
    await restarter({ restart: "kubernetes", service: "cloudflared", namespace: "tunnels", timeoutMs: 30_000 }).restart(
      running,
    );
    expect(calls()).toEqual([
      "kubectl rollout restart deployment/cloudflared -n tunnels",
      "kubectl rollout status deployment/cloudflared -n tunnels --timeout=30s",
    ]);
  });

  it("failures are one readable line: a missing tool, a failing command, a hang, a tunnel that never gets ready", async () => {
    expect(
      await failure(restarter({ restart: "command", command: ["wanwatch-no-such-tool", "x"] }).restart(running)),
    ).toBe("wanwatch-no-such-tool: command not found");
    expect(
      await failure(restarter({ restart: "command", command: [join(dir, "fails"), "--now"] }).restart(running)),
    ).toBe(`\`${join(dir, "fails")} --now\` failed (exit 5): unit cloudflared.service not found`);

    const t0 = Date.now();
    expect(
      await failure(
        restarter({ restart: "command", command: [join(dir, "hangs")], timeoutMs: 1_000 }).restart(running),
      ),
    ).toMatch(/timed out after \d+ ms$/);
    expect(Date.now() - t0).toBeLessThan(8_000); // stopped at its timeout, not left to run for 60 s

    const stopping = new AbortController();
    setTimeout(() => stopping.abort(new Error("the agent is stopping")), 300);
    const t1 = Date.now();
    expect(
      await failure(
        restarter({ restart: "command", command: [join(dir, "hangs")], timeoutMs: 60_000 }).restart(stopping.signal),
      ),
    ).toMatch(/was cancelled$/);
    expect(Date.now() - t1).toBeLessThan(5_000); // cancelled at stop, not left to its 60 s timeout

    const nobody = `http://127.0.0.1:${await freePort()}/ready`;
    expect(
      await failure(
        restarter({ restart: "command", command: ["true"], timeoutMs: 1_000, readyUrl: nobody }).restart(running),
      ),
    ).toMatch(
      new RegExp(`^tunnel not ready after \\d+ ms \\(${nobody.replace(/[.?/]/g, "\\$&")}: connection refused\\)$`),
    );
  });
});
