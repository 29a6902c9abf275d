// `agent install` / `agent uninstall` on a host without systemd (the unit itself runs under a real
// systemd in systemd-unit.test.ts): every config field has a flag, the unit grants what the role
// needs, the bundle lands in one fixed place, and no secret passes through a command line.
import { execFileSync } from "node:child_process";
import { existsSync, lstatSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { parse } from "yaml";
import { beforeAll, describe, expect, it } from "vitest";
import { AgentConfig } from "../../agent/src/config/schema.ts";
import { BUNDLE, NODE20, buildBundle, wanwatch } from "../../lab/agent-process.ts";
import { tempDir } from "./support.ts";

beforeAll(() => buildBundle());

const EDGE = "https://wanwatch.example.workers.dev";
const paths = (dir: string) => [
  "--config",
  join(dir, "etc/agent.yaml"),
  "--unit",
  join(dir, "wanwatch.service"),
  "--prefix",
  join(dir, "usr"),
  "--secret-file",
  join(dir, "etc/secret"),
];
const probe = (dir: string) => [
  "agent",
  "install",
  "--edge",
  EDGE,
  "--site",
  "office",
  "--agent",
  "sbc1",
  "--role",
  "probe",
  "--uplink",
  "isp1=lo",
  ...paths(dir),
];
const server = (dir: string) => [
  "agent",
  "install",
  "--edge",
  EDGE,
  "--site",
  "office",
  "--agent",
  "srv1",
  "--role",
  "server",
  "--uplink",
  "isp1=lo",
  "--uplink",
  "isp2=lo",
  ...paths(dir),
];
const section = (out: string, i: number) => out.split(/^==> .* <==$/m)[i]!.trim();

describe("agent install --dry-run", () => {
  it("a probe's unit: an unprivileged user, no capabilities, sandboxed, no restart on exit 2, the bundle from its fixed place", async () => {
    const dir = tempDir();
    const r = await wanwatch([...probe(dir), "--dry-run"]);
    expect(r.code, r.stderr).toBe(0);
    const unit = section(r.stdout, 2);
    for (const line of [
      "User=wanwatch",
      "CapabilityBoundingSet=",
      "ProtectSystem=strict",
      "StateDirectory=wanwatch",
      "NoNewPrivileges=yes",
      "PrivateTmp=yes",
      "Restart=on-failure",
      "RestartPreventExitStatus=2",
      "Wants=network-online.target",
      "After=network-online.target",
    ])
      expect(unit.split("\n")).toContain(line);
    expect(unit).not.toContain("CAP_NET_ADMIN");
    expect(unit).toMatch(
      new RegExp(
        `^ExecStart=\\S+ ${join(dir, "usr/lib/wanwatch/wanwatch.mjs")} agent run --config ${join(dir, "etc/agent.yaml")}$`,
        "m",
      ),
    );
    expect(unit).not.toContain(BUNDLE);
    expect(existsSync(join(dir, "etc"))).toBe(false);
  });

  it("a server's unit: root with CAP_NET_ADMIN only; NetworkManager ordered first with nmcli; kubectl's home readable for kubernetes", async () => {
    const nm = await wanwatch([
      ...server(mkdir()),
      "--switch",
      "nmcli",
      "--connection",
      "isp1=wired",
      "--connection",
      "isp2=lte",
      "--dry-run",
    ]);
    expect(nm.code, nm.stderr).toBe(0);
    const unit = section(nm.stdout, 2).split("\n");
    for (const line of [
      "User=root",
      "CapabilityBoundingSet=CAP_NET_ADMIN",
      "AmbientCapabilities=CAP_NET_ADMIN",
      "ProtectHome=yes",
      "ProtectSystem=strict",
      "After=network-online.target NetworkManager.service",
    ])
      expect(unit).toContain(line);
    const k8s = await wanwatch([
      ...server(mkdir()),
      "--tunnel",
      "kubernetes",
      "--tunnel-service",
      "cloudflared",
      "--dry-run",
    ]);
    expect(section(k8s.stdout, 2).split("\n")).toContain("ProtectHome=read-only");
    // Pinned replicas: what their backends need (one of them on kubernetes here).
    const pinned = await wanwatch([
      ...server(mkdir()),
      "--tunnel",
      "pinned",
      "--tunnel-replica",
      "isp1=kubernetes:cloudflared-isp1",
      "--tunnel-replica",
      "isp2=systemd:cloudflared-isp2",
      "--dry-run",
    ]);
    expect(section(pinned.stdout, 2).split("\n")).toContain("ProtectHome=read-only");
  });

  it("every config field has a flag, and the config it writes is the one the agent loads", async () => {
    const dir = tempDir();
    const r = await wanwatch([
      ...server(dir),
      "--switch",
      "nmcli",
      "--connection",
      "isp1=Wired 1",
      "--connection",
      "isp2=lte",
      "--gateway",
      "isp1=192.168.1.1",
      "--tunnel",
      "command",
      "--tunnel-command",
      "/usr/local/bin/restart-tunnel --now",
      "--tunnel-timeout",
      "90s",
      "--ready-url",
      "http://127.0.0.1:2000/ready",
      "--heartbeat",
      "500ms",
      "--state-dir",
      join(dir, "state"),
      "--dry-run",
    ]);
    expect(r.code, r.stderr).toBe(0);
    const yaml = section(r.stdout, 1);
    expect(yaml).toMatch(/^# wanwatch agent config, written by `wanwatch agent install`\. Reference: docs\/agent\.md/);
    expect(AgentConfig.parse(parse(yaml))).toEqual({
      edge: EDGE,
      site: "office",
      agent: "srv1",
      role: "server",
      secretFile: join(dir, "etc/secret"),
      stateDir: join(dir, "state"),
      heartbeatMs: 500,
      uplinks: [
        { id: "isp1", interface: "lo", connection: "Wired 1", gateway: "192.168.1.1" },
        { id: "isp2", interface: "lo", connection: "lte" },
      ],
      switch: { backend: "nmcli" },
      tunnels: {
        backend: "command",
        command: ["/usr/local/bin/restart-tunnel", "--now"],
        timeoutMs: 90_000,
        readyUrl: "http://127.0.0.1:2000/ready",
      },
    });
    expect(section(r.stdout, 2)).toContain(`ReadWritePaths=${join(dir, "state")}`);
  });

  it("--tunnel pinned: a replica per uplink from --tunnel-replica, with its readiness URL", async () => {
    const r = await wanwatch([
      ...server(mkdir()),
      "--tunnel",
      "pinned",
      "--tunnel-replica",
      "isp1=systemd:cloudflared-isp1",
      "--tunnel-replica",
      "isp2=command:/usr/local/bin/restart-replica isp2",
      "--replica-ready-url",
      "isp1=http://127.0.0.1:2001/ready",
      "--tunnel-timeout",
      "30s",
      "--dry-run",
    ]);
    expect(r.code, r.stderr).toBe(0);
    expect(AgentConfig.parse(parse(section(r.stdout, 1))).tunnels).toEqual({
      backend: "pinned",
      replicas: {
        isp1: {
          backend: "systemd",
          service: "cloudflared-isp1",
          timeoutMs: 30_000,
          readyUrl: "http://127.0.0.1:2001/ready",
        },
        isp2: { backend: "command", command: ["/usr/local/bin/restart-replica", "isp2"], timeoutMs: 30_000 },
      },
    });
  });

  it.each([
    [
      ["--tunnel", "pinned", "--tunnel-replica", "isp1=systemd:a"],
      "tunnels.replicas.isp2: pinned tunnels need a replica on every uplink (each bound to that uplink's source address) (--tunnel-replica)",
    ],
    [
      ["--tunnel", "pinned", "--tunnel-replica", "isp1=cloudflared"],
      "--tunnel-replica isp1=cloudflared: write it as UPLINK=BACKEND:TARGET",
    ],
    [["--tunnel-replica", "isp1=systemd:a"], "--tunnel-replica goes with --tunnel pinned"],
    [
      ["--switch", "nmcli"],
      "uplinks[0].connection: the nmcli backend needs the uplink's NetworkManager connection name (--connection)",
    ],
    [["--connection", "isp9=x"], '--connection isp9=x: "isp9" is none of this agent\'s uplinks (isp1, isp2)'],
    [["--connection", "isp1"], "--connection isp1: write it as UPLINK=VALUE"],
    [["--tunnel-service", "cloudflared"], "--tunnel-service goes with --tunnel swarm|kubernetes|systemd|command"],
    [["--tunnel", "swarm"], "tunnels.service: Invalid input: expected string, received undefined (--tunnel-service)"],
    [["--heartbeat", "fast"], "--heartbeat fast: not a duration"],
    [
      ["--edge", "wanwatch.example.workers.dev"],
      '--edge "wanwatch.example.workers.dev": expected the https:// URL of your edge, e.g. --edge https://',
    ],
    [["--tunnel", "swarm", "--tunnel-service", "x", "--tunnel-timeout", "1ms"], "tunnels.timeoutMs: Too small"],
  ])("%j: one line naming the flag, exit 2", async (extra, message) => {
    const r = await wanwatch([...server(mkdir()), ...extra, "--dry-run"]);
    expect(r.code).toBe(2);
    expect(r.stderr.split("\n")[0]).toContain(message);
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });
});

function mkdir(): string {
  return tempDir();
}

describe("agent install, then uninstall (no systemd on this host)", () => {
  it("installs the bundle under the prefix, the config and the secret from stdin (0600), and prints a start command with --config", async () => {
    const dir = tempDir();
    const secret = "s3cret-value-from-enrolment-0123";
    const r = await wanwatch([...server(dir), "--secret-stdin"], { input: `${secret}\n` });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout + r.stderr).not.toContain(secret);
    const bundle = join(dir, "usr/lib/wanwatch/wanwatch.mjs");
    expect(readFileSync(bundle)).toEqual(readFileSync(BUNDLE));
    expect(lstatSync(join(dir, "usr/bin/wanwatch")).isSymbolicLink()).toBe(true);
    expect(execFileSync(NODE20, [join(dir, "usr/bin/wanwatch"), "--version"], { encoding: "utf8" }).trim()).toMatch(
      /^\d+\.\d+\.\d+/,
    );
    for (const f of ["etc/agent.yaml", "etc/secret"]) expect(statSync(join(dir, f)).mode & 0o777).toBe(0o600);
    expect(readFileSync(join(dir, "etc/secret"), "utf8")).toBe(`${secret}\n`);
    expect(r.stdout).toContain(
      `start the agent with\n  ${join(dir, "usr/bin/wanwatch")} agent run --config ${join(dir, "etc/agent.yaml")}`,
    );

    const u = await wanwatch([
      "agent",
      "uninstall",
      "--config",
      join(dir, "etc/agent.yaml"),
      "--unit",
      join(dir, "wanwatch.service"),
      "--prefix",
      join(dir, "usr"),
    ]);
    expect(u.code, u.stderr).toBe(0);
    for (const f of [
      "etc/agent.yaml",
      "etc/secret",
      "wanwatch.service",
      "usr/lib/wanwatch/wanwatch.mjs",
      "usr/bin/wanwatch",
    ])
      expect(existsSync(join(dir, f)), f).toBe(false);
  });

  it("--secret-stdin with nothing on stdin: one line, exit 2, nothing written", async () => {
    const dir = tempDir();
    const r = await wanwatch([...probe(dir), "--secret-stdin"], { input: "" });
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(
      "wanwatch: --secret-stdin: standard input holds no secret (pipe in the value `wanwatch site enroll` printed)\n",
    );
    expect(existsSync(join(dir, "etc"))).toBe(false);
  });
});
