import { execFileSync } from "node:child_process";
import { existsSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parse } from "yaml";
import { beforeAll, describe, expect, it } from "vitest";
import { NODE20, NODE22, buildBundle, wanwatch } from "../../lab/agent-process.ts";
import { writeStatus } from "../../agent/src/state/files.ts";
import { agentFiles, tempDir } from "./support.ts";

beforeAll(() => buildBundle());

const VERSION = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")).version;

describe.each([
  ["node 22", NODE22, 22],
  ["node 20 (/usr/bin/node)", NODE20, 20],
])("the bundle on %s", (_name, node, major) => {
  it("runs on the Node its name says", () => {
    expect(execFileSync(node, ["--version"], { encoding: "utf8" }).trim()).toMatch(new RegExp(`^v${major}\\.`));
  });

  it("prints its version", async () => {
    const r = await wanwatch(["--version"], { node });
    expect(r).toMatchObject({ code: 0, stderr: "" });
    expect(r.stdout.trim()).toBe(VERSION);
  });

  it("reports config errors: exit 2, one line per problem, each naming the field", async () => {
    const f = agentFiles({
      edge: "ftp://edge.example",
      site: "Office",
      agent: "srv1",
      role: "server",
      uplinks: [
        { id: "isp1", interface: "lo" },
        { id: "isp2", interface: "eth0", colour: "red" },
      ],
    });
    const r = await wanwatch(["agent", "run", "--config", f.configPath], { node });
    expect(r.code).toBe(2);
    const lines = r.stderr.trim().split("\n");
    expect(lines).toHaveLength(4);
    expect(lines.at(-1)).toBe("see docs/agent.md in the wanwatch repository for every field of the agent config");
    expect(lines.some((l) => l.startsWith("edge: "))).toBe(true);
    expect(lines.some((l) => l.startsWith("site: "))).toBe(true);
    expect(lines).toContain('uplinks[1].colour: unknown field "colour"');
    expect(r.stdout).toBe("");
  });

  it("names an interface that does not exist on this host", async () => {
    const f = agentFiles({
      edge: "http://127.0.0.1:2",
      site: "office",
      agent: "srv1",
      role: "server",
      uplinks: [
        { id: "isp1", interface: "lo" },
        { id: "isp2", interface: "eth9" },
      ],
    });
    const r = await wanwatch(["agent", "run", "--config", f.configPath], { node });
    expect(r.code).toBe(2);
    expect(r.stderr.trim()).toBe('uplinks[1].interface: interface "eth9" does not exist');
  });
});

describe("CLI usage", () => {
  it("--help lists every command and exits 0", async () => {
    const r = await wanwatch(["--help"]);
    expect(r.code).toBe(0);
    for (const c of [
      "agent run",
      "agent status",
      "agent install",
      "doctor",
      "site apply",
      "site enroll",
      "site status",
      "site events",
      "site override",
    ])
      expect(r.stdout).toContain(`wanwatch ${c}`);
  });

  it.each([
    [[], "a command is required"],
    [["frobnicate"], 'unknown command "frobnicate"'],
    [["agent"], "an agent command is required"],
    [["agent", "run", "--confg", "x"], "Unknown option '--confg'"],
    [["agent", "run", "extra"], 'unexpected argument "extra"'],
    [["site", "status", "--edge", "http://127.0.0.1:2", "--site", "office"], "WANWATCH_ADMIN_TOKEN is not set"],
    [
      ["site", "status", "--edge", "nope", "--site", "office"],
      '--edge "nope": expected the https:// URL of your edge, e.g. --edge https://',
    ],
    [
      ["site", "events", "--edge", "http://127.0.0.1:2", "--site", "office", "--limit", "zero"],
      "--limit: must be a whole number",
    ],
    [
      ["site", "enroll", "--edge", "http://127.0.0.1:2", "--site", "office", "--id", "sbc1", "--role", "probe"],
      "uplink: a probe sits behind exactly one uplink",
    ],
    [
      ["site", "override", "--clear", "--uplink", "isp1", "--edge", "http://127.0.0.1:2", "--site", "office"],
      "--clear takes no --uplink",
    ],
    [
      ["site", "enroll", "--id", "sbc1", "--rotate", "--grace=-5", "--edge", "http://127.0.0.1:2", "--site", "office"],
      "--grace -5: not a duration",
    ],
    [
      ["site", "enroll", "--id", "sbc1", "--rotate", "--grace=8d", "--edge", "http://127.0.0.1:2", "--site", "office"],
      "--grace: graceSeconds: Too big",
    ],
    [
      [
        "site",
        "enroll",
        "--id",
        "sbc1",
        "--role",
        "probe",
        "--uplink",
        "isp1",
        "--grace",
        "5",
        "--edge",
        "http://127.0.0.1:2",
        "--site",
        "office",
      ],
      "--grace goes with --rotate",
    ],
    [
      ["agent", "install", "--edge", "http://e", "--site", "s", "--agent", "a", "--role", "router"],
      "--role must be probe or server",
    ],
  ])("%j exits 2: %s", async (args, message) => {
    const r = await wanwatch(args, {
      env: { WANWATCH_ADMIN_TOKEN: undefined, WANWATCH_EDGE: undefined, WANWATCH_SITE: undefined },
    });
    expect(r.code).toBe(2);
    expect(r.stderr.split("\n")[0]).toContain(message);
    expect(r.stdout).toBe("");
  });

  it("an unreachable edge is a one-line failure, exit 1", async () => {
    const r = await wanwatch(["site", "status", "--edge", "http://127.0.0.1:2", "--site", "office"], {
      env: { WANWATCH_ADMIN_TOKEN: "t" },
    });
    expect(r.code).toBe(1);
    expect(r.stderr.trim()).toBe("wanwatch: cannot reach the edge at http://127.0.0.1:2 (ECONNREFUSED)");
  });

  it("refuses a setting it does not know (the agent never switches on its own evidence: no localFailover)", async () => {
    const f = agentFiles({
      edge: "http://127.0.0.1:2",
      site: "office",
      agent: "sbc1",
      role: "probe",
      uplinks: [{ id: "isp1", interface: "lo" }],
      localFailover: true,
    });
    const r = await wanwatch(["agent", "run", "--config", f.configPath]);
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split("\n")).toEqual([
      'localFailover: unknown field "localFailover"',
      "see docs/agent.md in the wanwatch repository for every field of the agent config",
    ]);
  });

  it("a missing or malformed config file is exit 2 with one line", async () => {
    const dir = tempDir();
    let r = await wanwatch(["agent", "run", "--config", join(dir, "none.yaml")]);
    expect(r.code).toBe(2);
    expect(r.stderr.trim()).toBe(`config: ${join(dir, "none.yaml")} does not exist`);
    writeFileSync(join(dir, "bad.yaml"), "edge: [unclosed\n");
    r = await wanwatch(["agent", "run", "--config", join(dir, "bad.yaml")]);
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
    expect(r.stderr).toContain("is not valid YAML or JSON");
  });

  it("agent status without any state says so", async () => {
    const f = agentFiles({
      edge: "http://127.0.0.1:2",
      site: "office",
      agent: "sbc1",
      role: "probe",
      uplinks: [{ id: "isp1", interface: "lo" }],
    });
    const r = await wanwatch(["agent", "status", "--config", f.configPath]);
    expect(r.code).toBe(1);
    expect(r.stderr.trim()).toBe(
      `wanwatch: no agent state in ${f.stateDir}: has \`wanwatch agent run\` started on this host?`,
    );
  });
});

it("agent status shows each pinned tunnel replica: when it was restarted, or why its restart failed", async () => {
  const replica = (service: string) => ({ backend: "systemd", service });
  const f = agentFiles({
    edge: "http://127.0.0.1:2",
    site: "office",
    agent: "srv1",
    role: "server",
    uplinks: [
      { id: "isp1", interface: "lo" },
      { id: "isp2", interface: "lo" },
    ],
    tunnels: { backend: "pinned", replicas: { isp1: replica("cloudflared-isp1"), isp2: replica("cloudflared-isp2") } },
  });
  const now = Date.now();
  const uplink = { transport: "websocket" as const, lastContactAt: now, rttMs: 3, error: null, localAddress: null };
  writeStatus(f.stateDir, {
    pid: process.pid,
    agent: "srv1",
    site: "office",
    role: "server",
    edge: "http://127.0.0.1:2",
    startedAt: now - 600_000,
    updatedAt: now,
    stoppedAt: null,
    clockOffsetMs: 0,
    directive: null,
    appliedGeneration: null,
    tunnelGeneration: null,
    lastError: null,
    routedUplink: "isp2",
    uplinks: { isp1: uplink, isp2: uplink },
    replicas: {
      isp1: { restarting: false, restartedAt: null, lastError: "systemctl: exit 5", retryAt: now + 4_000 },
      isp2: { restarting: false, restartedAt: now - 120_000, lastError: null, retryAt: null },
    },
  });
  const r = await wanwatch(["agent", "status", "--config", f.configPath]);
  expect(r.code, r.stderr).toBe(0);
  const lines = r.stdout.trim().split("\n").slice(-2);
  expect(lines[0]).toBe(
    `pinned tunnel replica isp1: not restarted since the agent started; last restart failed: systemctl: exit 5 (retry on its next answer after ${new Date(now + 4_000).toISOString()})`,
  );
  expect(lines[1]).toMatch(/^pinned tunnel replica isp2: restarted 2m ago$/);
});

describe("agent install", () => {
  const base = (dir: string) => [
    "agent",
    "install",
    "--edge",
    "https://wanwatch.example.workers.dev",
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
    "--secret-file",
    join(dir, "secret"),
    "--config",
    join(dir, "etc/agent.yaml"),
    "--unit",
    join(dir, "wanwatch.service"),
    "--prefix",
    join(dir, "usr"),
  ];

  it("--dry-run prints the config and the unit, and touches nothing", async () => {
    const dir = tempDir();
    const r = await wanwatch([...base(dir), "--dry-run"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`==> ${join(dir, "etc/agent.yaml")} (mode 0600) <==`);
    expect(r.stdout).toContain("edge: https://wanwatch.example.workers.dev");
    expect(r.stdout).toContain("[Service]");
    expect(r.stdout).toMatch(/ExecStart=\S+node\S* \S+wanwatch\.mjs agent run --config \S+etc\/agent\.yaml/);
    expect(existsSync(join(dir, "etc"))).toBe(false);
    expect(existsSync(join(dir, "wanwatch.service"))).toBe(false);
    // The printed config is the config the agent would load.
    const yaml = r.stdout.split(/^==> .* <==$/m)[1]!;
    expect(parse(yaml)).toMatchObject({
      site: "office",
      agent: "srv1",
      role: "server",
      uplinks: [
        { id: "isp1", interface: "lo" },
        { id: "isp2", interface: "lo" },
      ],
    });
  });

  it("writes the config (0600), the secret from stdin (0600) and the unit; the config loads", async () => {
    const dir = tempDir();
    const r = await wanwatch([...base(dir), "--secret-stdin"], { input: "s3cret-value-from-enrolment-0123\n" });
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(statSync(join(dir, "etc/agent.yaml")).mode & 0o777).toBe(0o600);
    expect(statSync(join(dir, "secret")).mode & 0o777).toBe(0o600);
    expect(readFileSync(join(dir, "secret"), "utf8").trim()).toBe("s3cret-value-from-enrolment-0123");
    expect(readFileSync(join(dir, "wanwatch.service"), "utf8")).toContain("WantedBy=multi-user.target");
    expect(r.stdout).not.toContain("s3cret");
    // doctor loads what install wrote (the edge is not reachable from here: exit 1, but the config is fine).
    const d = await wanwatch(["doctor", "--config", join(dir, "etc/agent.yaml")], { timeoutMs: 30_000 });
    expect(d.stdout).toContain(`✓ config ${join(dir, "etc/agent.yaml")}`);
    expect(d.stdout).toContain("✓ uplink isp1: interface lo exists");
    expect(d.stdout).toMatch(/✓ secret file \S+: mode 0600/);
  });

  it("a server needs every uplink named with its interface", async () => {
    const r = await wanwatch([
      "agent",
      "install",
      "--edge",
      "https://e.example",
      "--site",
      "office",
      "--agent",
      "srv1",
      "--role",
      "server",
      "--uplink",
      "isp1=eth0",
      "--dry-run",
    ]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("a server agent uses every uplink");
  });

  it("a probe's interface defaults to the one of the host's default route", async () => {
    const dev = /\bdev (\S+)/.exec(execFileSync("ip", ["-4", "route", "show", "default"], { encoding: "utf8" }))?.[1];
    const r = await wanwatch([
      "agent",
      "install",
      "--edge",
      "https://e.example",
      "--site",
      "office",
      "--agent",
      "sbc1",
      "--role",
      "probe",
      "--uplink",
      "isp1",
      "--dry-run",
    ]);
    if (!dev) {
      expect(r.code).toBe(2);
      expect(r.stderr).toContain("this host has no default route");
      return;
    }
    expect(r.code, r.stderr).toBe(0);
    const yaml = r.stdout.split(/^==> .* <==$/m)[1]!;
    expect(parse(yaml).uplinks).toEqual([{ id: "isp1", interface: dev }]);
  });
});
