// The operator's CLI against the real local edge: errors that say what to do in CLI commands, and
// the host command `site enroll --secret` prints, which must work as printed (the secret through stdin).
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { startLocalEdge, type LocalEdge } from "../../tools/local-edge.ts";
import { buildBundle, wanwatch } from "../../lab/agent-process.ts";
import { tempDir } from "./support.ts";

let edge: LocalEdge;
const admin = () => ({ env: { WANWATCH_ADMIN_TOKEN: edge.adminToken } });
const at = (site = "office") => ["--edge", edge.url, "--site", site];

beforeAll(async () => {
  buildBundle();
  edge = await startLocalEdge({ stateDir: tempDir("wanwatch-edge-") });
  const file = join(tempDir(), "site.yaml");
  writeFileSync(file, "uplinks:\n  - { id: isp1, priority: 1 }\n  - { id: isp2, priority: 2 }\n");
  const r = await wanwatch(["site", "apply", file, ...at()], admin());
  expect(r.code, r.stderr).toBe(0);
}, 90_000);

afterAll(async () => {
  await edge?.stop();
});

it("a misspelled site: what the edge says, and the CLI command that fixes it (no raw HTTP)", async () => {
  const r = await wanwatch(["site", "status", ...at("ofice")], admin());
  expect(r.code).toBe(1);
  expect(r.stderr).toMatch(
    /^wanwatch: site ofice: no site "ofice" on this edge; the sites here, closest first: office.*To create it: wanwatch site apply FILE --site ofice \(site_not_found\)\n$/,
  );
});

it("enrolling an id that exists suggests --rotate", async () => {
  expect(
    (
      await wanwatch(
        ["site", "enroll", "--id", "sbc9", "--role", "probe", "--uplink", "isp1", "--secret", ...at()],
        admin(),
      )
    ).code,
  ).toBe(0);
  const r = await wanwatch(["site", "enroll", "--id", "sbc9", "--role", "probe", "--uplink", "isp1", ...at()], admin());
  expect(r.code).toBe(1);
  expect(r.stderr).toContain(
    "for a new secret run wanwatch site enroll --id sbc9 --rotate --site office (agent_exists)\n",
  );
});

it("override --for 2h", async () => {
  const r = await wanwatch(
    ["site", "override", "--uplink", "isp2", "--for", "2h", "--reason", "maintenance", ...at()],
    admin(),
  );
  expect(r.code, r.stderr).toBe(0);
  expect(r.stdout).toMatch(/^site office: isp2 pinned for 7200 s \(maintenance\)/);
  expect((await wanwatch(["site", "override", "--clear", ...at()], admin())).code).toBe(0);
});

/** The printed host command, run as printed (interfaces filled in, files kept in a temp folder). */
async function runHostCommand(stdout: string, secret: string, dir: string) {
  const line = stdout.split("\n").find((l) => l.startsWith("  wanwatch agent install "))!;
  expect(line).not.toContain(secret);
  expect(line.endsWith(" --secret-stdin")).toBe(true);
  const args = line.trim().replaceAll("=IFACE", "=lo").split(" ").slice(1);
  const paths = [
    "--config",
    join(dir, "agent.yaml"),
    "--secret-file",
    join(dir, "secret"),
    "--state-dir",
    join(dir, "state"),
    "--unit",
    join(dir, "wanwatch.service"),
    "--prefix",
    join(dir, "usr"),
  ];
  return wanwatch([...args, ...paths], { input: `${secret}\n` });
}

it("site enroll --secret prints a host command that works for a probe and for a server, the secret never on it", async () => {
  for (const [id, role, extra] of [
    ["sbc1", "probe", ["--uplink", "isp1"]],
    ["srv1", "server", []],
  ] as const) {
    const r = await wanwatch(["site", "enroll", "--id", id, "--role", role, ...extra, "--secret", ...at()], admin());
    expect(r.code, r.stderr).toBe(0);
    const secret = r.stdout.split("\n")[2]!;
    expect(secret).toMatch(/^[A-Za-z0-9_-]{43}$/);
    if (role === "server") expect(r.stdout).toContain("--uplink isp1=IFACE --uplink isp2=IFACE --secret-stdin");
    const dir = tempDir();
    const installed = await runHostCommand(r.stdout, secret, dir);
    expect(installed.code, installed.stderr).toBe(0);
    if (role === "probe") {
      const doc = await wanwatch(["doctor", "--config", join(dir, "agent.yaml")]);
      expect(doc.stdout).toMatch(/^✓ heartbeat through isp1: accepted by the edge/m);
    }
  }
});
