// The one-line install as an admin runs it: `site enroll` prints a line, and the line, run with
// `sh` against the real local edge, installs the agent from the edge's own script and bundle (into
// a temporary prefix: no systemd here; the unit under a real systemd is systemd-unit.test.ts).
import { execFile, execFileSync } from "node:child_process";
import { promisify } from "node:util";
import { existsSync, lstatSync, readFileSync, readdirSync, statSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import { join } from "node:path";
import { parse } from "yaml";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AgentConfig } from "../../agent/src/config/schema.ts";
import { startLocalEdge, type LocalEdge } from "../../tools/local-edge.ts";
import { BUNDLE, NODE20, buildBundle, wanwatch } from "../../lab/agent-process.ts";
import { tempDir } from "./support.ts";

let edge: LocalEdge;
const SITE = "office";
const admin = () => ({ env: { WANWATCH_ADMIN_TOKEN: edge.adminToken } });
const at = () => ["--edge", edge.url, "--site", SITE];

beforeAll(async () => {
  buildBundle();
  edge = await startLocalEdge({ stateDir: tempDir("wanwatch-edge-") });
  const file = join(tempDir(), "site.yaml");
  writeFileSync(file, "uplinks:\n  - { id: isp1, priority: 1 }\n  - { id: isp2, priority: 2 }\n");
  expect((await wanwatch(["site", "apply", file, ...at()], admin())).code).toBe(0);
}, 90_000);

afterAll(async () => {
  await edge?.stop();
});

/** `site enroll`'s install line, as printed. */
async function installLine(...args: string[]): Promise<string> {
  const r = await wanwatch(["site", "enroll", ...args, ...at()], admin());
  expect(r.code, r.stderr).toBe(0);
  expect(r.stdout).toMatch(/works once, until \S+ \(1 h\)/);
  return r.stdout
    .split("\n")
    .find((l) => l.startsWith("  curl "))!
    .trim();
}

/** Runs the line with `sh` (no sudo: the test is root, and the prefix is a temporary folder); files land in `dir`. */
async function run(line: string, dir: string, extra: string[] = [], env: Record<string, string> = {}) {
  const files = [
    ["--config", join(dir, "etc/agent.yaml")],
    ["--secret-file", join(dir, "etc/secret")],
    ["--state-dir", join(dir, "state")],
    ["--unit", join(dir, "wanwatch.service")],
  ].flat();
  const cmd = `${line.replace("| sudo sh", "| sh")} ${[...files, ...extra].map((a) => `'${a}'`).join(" ")}`;
  try {
    const { stdout, stderr } = await promisify(execFile)("/bin/sh", ["-c", cmd], {
      // The machine's own Node (20) is the one the script finds, as on an agent's host.
      env: { PATH: "/usr/bin:/bin", WANWATCH_PREFIX: join(dir, "usr"), ...env },
      encoding: "utf8",
      timeout: 60_000,
    });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

const enrolled = async () =>
  (await edge.api("GET", `/v1/sites/${SITE}/status`)).agents.map((a: { id: string }) => a.id).sort();

describe("the one-line install", () => {
  it("a probe: downloads and verifies the edge's bundle, redeems the token, writes config and secret (0600); the agent's heartbeat is accepted; the same line again is refused in one line and writes nothing", async () => {
    const line = await installLine("--id", "sbc1", "--role", "probe", "--uplink", "isp1");
    expect(line).toMatch(
      new RegExp(`^curl -fsSL ${edge.url}/install\\.sh \\| sudo sh -s -- wwe1\\.office\\.[\\w-]{43}$`),
    );
    expect(await enrolled()).not.toContain("sbc1");
    const dir = tempDir();
    const r = await run(line, dir, ["--uplink", "isp1=lo"]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(
      /^wanwatch install: agent \S+ downloaded from http:\/\/127\.0\.0\.1:\d+, SHA-256 verified$/m,
    );
    expect(r.stdout).toContain(
      "enrolled agent sbc1 (probe behind isp1) in site office: the edge gave this host its secret",
    );
    expect(r.stdout).toMatch(/^isp1: interface lo, no default route through it$/m);
    expect(readFileSync(join(dir, "usr/lib/wanwatch/wanwatch.mjs"))).toEqual(readFileSync(BUNDLE));
    expect(lstatSync(join(dir, "usr/bin/wanwatch")).isSymbolicLink()).toBe(true);
    for (const f of ["etc/agent.yaml", "etc/secret"]) expect(statSync(join(dir, f)).mode & 0o777).toBe(0o600);
    const secret = readFileSync(join(dir, "etc/secret"), "utf8").trim();
    expect(secret).toMatch(/^[\w-]{43}$/);
    expect(r.stdout + r.stderr).not.toContain(secret);
    expect(AgentConfig.parse(parse(readFileSync(join(dir, "etc/agent.yaml"), "utf8")))).toMatchObject({
      edge: edge.url,
      site: SITE,
      agent: "sbc1",
      role: "probe",
      uplinks: [{ id: "isp1", interface: "lo" }],
    });
    expect(r.stdout).toContain(`start the agent with\n  ${join(dir, "usr/bin/wanwatch")} agent run --config`);
    expect(await enrolled()).toContain("sbc1");
    const doctor = await wanwatch(["doctor", "--config", join(dir, "etc/agent.yaml")], { node: NODE20 });
    expect(doctor.stdout).toMatch(/^✓ heartbeat through isp1: accepted by the edge/m);

    const again = tempDir();
    const twice = await run(line, again, ["--uplink", "isp1=lo"]);
    expect(twice.code).toBe(1);
    expect(twice.stderr).toMatch(
      /^wanwatch: the edge refused the enrolment token \(token_used\): this enrolment token was already used at \S+ \(agent sbc1 is enrolled\)[^\n]*\n$/,
    );
    expect(readdirSync(again)).toEqual([]);
  });

  it("a server: a line with a placeholder left in is refused before the token is spent, --dry-run spends nothing; named, the same line installs", async () => {
    const line = await installLine("--id", "srv1", "--role", "server");
    expect(line).toMatch(/ -- wwe1\.office\.[\w-]{43} --uplink isp1=IFACE --uplink isp2=IFACE$/);
    const dir = tempDir();
    const placeholder = await run(line, dir);
    expect(placeholder.code).toBe(2);
    expect(placeholder.stderr).toMatch(
      /^wanwatch: --uplink isp1=IFACE: this host has no interface "IFACE" \(it has .*lo.*\)\n$/,
    );
    expect(readdirSync(dir)).toEqual([]);
    expect(await enrolled()).not.toContain("srv1");
    const dry = await run(line.replace(/=IFACE/g, "=lo"), dir, ["--switch", "iproute2", "--dry-run"]);
    expect(dry.code, dry.stderr).toBe(0);
    expect(dry.stdout).toContain(
      "# would redeem the enrolment token for agent srv1 (server) in site office (it stays unused)",
    );
    expect(readdirSync(dir)).toEqual([]);
    expect(await enrolled()).not.toContain("srv1");
    const r = await run(line.replace(/=IFACE/g, "=lo"), dir, ["--switch", "iproute2"]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain("enrolled agent srv1 (server) in site office");
    expect(AgentConfig.parse(parse(readFileSync(join(dir, "etc/agent.yaml"), "utf8")))).toMatchObject({
      role: "server",
      uplinks: [
        { id: "isp1", interface: "lo" },
        { id: "isp2", interface: "lo" },
      ],
      switch: { backend: "iproute2" },
    });
    // Another line on the same host: the agent it was is named, so its enrolment can be revoked.
    const other = await installLine("--id", "srv2", "--role", "server");
    const again = await run(other.replace(/=IFACE/g, "=lo"), dir);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toContain(
      "this host was agent srv1 of site office: replaced (if nothing else runs it, `wanwatch site revoke --id srv1 --site office`)",
    );
  });

  it("a failure after the token is spent undoes every step and says what to do about the token", async () => {
    const line = await installLine("--id", "sbc2", "--role", "probe", "--uplink", "isp2");
    const dir = tempDir();
    // The unit goes last; a file where its folder should be makes that step fail.
    const blocker = join(tempDir(), "not-a-folder");
    writeFileSync(blocker, "");
    const r = await run(line, dir, ["--uplink", "isp2=lo", "--unit", join(blocker, "wanwatch.service")]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^wanwatch: cannot write \S+\/not-a-folder\/wanwatch\.service: E\w+\n/);
    expect(r.stderr).toContain("  every step before it was undone: nothing is installed\n");
    expect(r.stderr).toContain(
      "  the token is spent and agent sbc2 (probe behind isp2) in site office is enrolled with no host: on your workstation run `wanwatch site revoke --id sbc2 --site office`",
    );
    expect(readdirSync(dir)).toEqual([]);
  });

  it("a bundle that does not match the script's SHA-256 is not installed, and the token stays unused", async () => {
    const line = await installLine("--id", "sbc3", "--role", "probe", "--uplink", "isp1");
    const fake = createServer((_req, res) => res.end("console.log('not the agent')\n"));
    await new Promise<void>((ok) => fake.listen(0, "127.0.0.1", ok));
    try {
      const dir = tempDir();
      const url = `http://127.0.0.1:${(fake.address() as { port: number }).port}`;
      const r = await run(line, dir, ["--uplink", "isp1=lo"], { WANWATCH_EDGE: url });
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(
        /^wanwatch install: the downloaded agent's SHA-256 is [0-9a-f]{64}, not [0-9a-f]{64} as this script expects: nothing installed/,
      );
      expect(readdirSync(dir)).toEqual([]);
      expect(await enrolled()).not.toContain("sbc3");
      expect((await run(line, dir, ["--uplink", "isp1=lo"])).code).toBe(0);
    } finally {
      fake.close();
    }
  });

  it("the script checks its argument and Node before anything else, and a download cut short runs none of it", async () => {
    const script = await (await fetch(`${edge.url}/install.sh`)).text();
    const dir = tempDir();
    const sh = (args: string[], path = "/usr/bin:/bin") => {
      try {
        execFileSync("/bin/sh", ["-s", "--", ...args], {
          input: script,
          env: { PATH: path, WANWATCH_PREFIX: dir },
          stdio: ["pipe", "pipe", "pipe"],
        });
        return "";
      } catch (err) {
        return String((err as { stderr: Buffer }).stderr);
      }
    };
    expect(sh(["s3cret-pasted-by-mistake"])).toBe(
      "wanwatch install: the first argument is not an enrolment token (one starts with wwe1.): copy the whole line `wanwatch site enroll` printed\n",
    );
    // A PATH without node (sh and the basics only).
    const bin = tempDir();
    for (const t of ["mktemp", "rm", "id"]) execFileSync("ln", ["-s", `/usr/bin/${t}`, join(bin, t)]);
    expect(sh(["wwe1.office.x"], bin)).toMatch(
      /^wanwatch install: Node\.js 18\.19 or newer is needed and this host has none: sudo apt-get install -y nodejs/,
    );
    expect(existsSync(join(dir, "lib"))).toBe(false);
    // A download cut short anywhere runs none of it (the body is one function, called last).
    // (Run whole, this argument gets a line at once: see above.)
    for (const cut of [script.indexOf("NODE=$(command"), script.lastIndexOf('main "$@"')]) {
      const r = await promisify(execFile)("/bin/sh", ["-c", 'printf %s "$SCRIPT" | sh -s -- not-a-token'], {
        env: { PATH: "/usr/bin:/bin", WANWATCH_PREFIX: dir, SCRIPT: script.slice(0, cut) },
      }).catch((err: { stdout: string; stderr: string }) => err);
      expect(r.stdout + r.stderr).not.toContain("wanwatch install:");
    }
  });
});
