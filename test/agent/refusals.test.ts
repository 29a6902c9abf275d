// A doctor that tells the truth, and an agent that says why the edge refuses it: each mistake an
// operator can make in an agent's setup, against the real local edge.
import { existsSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startLocalEdge, type LocalEdge } from "../../tools/local-edge.ts";
import { Daemon, buildBundle, wanwatch } from "../../lab/agent-process.ts";
import { agentFiles, tempDir } from "./support.ts";

let edge: LocalEdge;
const SITE = "office";
const FAKETIME = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";
const secrets = new Map<string, string>();

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
  for (const id of ["p1", "p2", "p3"])
    secrets.set(id, (await edge.api("POST", `/v1/sites/${SITE}/agents`, { id, role: "probe", uplink: "isp1" })).secret);
}, 90_000);

afterAll(async () => {
  await edge?.stop();
});

const probe = (over: Record<string, unknown> = {}, secret = secrets.get("p1")!) =>
  agentFiles(
    { edge: edge.url, site: SITE, agent: "p1", role: "probe", uplinks: [{ id: "isp1", interface: "lo" }], ...over },
    secret,
  );

async function doctor(configPath: string, env: Record<string, string> = {}) {
  const r = await wanwatch(["doctor", "--config", configPath], { env });
  const lines = r.stdout.trim().split("\n");
  expect(
    lines.every((l) => /^[✓✗] /.test(l)),
    r.stdout,
  ).toBe(true);
  return { ...r, failed: lines.filter((l) => l.startsWith("✗")) };
}

describe("doctor", () => {
  it("a probe set up right: one signed heartbeat accepted, every line ✓, exit 0", async () => {
    const r = await doctor(probe().configPath);
    expect(r.failed).toEqual([]);
    expect(r.stdout).toMatch(/^✓ heartbeat through isp1: accepted by the edge in \d+ ms$/m);
    expect(r.stdout).toMatch(/^✓ clock skew vs edge: -?\d+\.\d s$/m);
    expect(r.code).toBe(0);
  });

  it.each([
    [
      "a wrong secret",
      () => probe({}, "not-the-secret-the-edge-issued-000"),
      /^✗ heartbeat through isp1: refused by the edge \(bad_signature: .*\); fix: the secret in .* is not agent p1's: .*wanwatch site enroll --id p1 --rotate --site office/m,
    ],
    [
      "an agent nobody enrolled",
      () => probe({ agent: "nobody" }),
      /^✗ heartbeat through isp1: refused by the edge \(unknown_agent: .*\); fix: agent nobody is not enrolled in site office .*`wanwatch site enroll --id nobody --role probe --uplink UPLINK --site office`/m,
    ],
    [
      "a misspelled site",
      () => probe({ site: "ofice" }),
      /^✗ heartbeat through isp1: refused by the edge \(site_not_found: no site "ofice" on this edge\); fix: this edge has no site ofice: check `site:` in the config/m,
    ],
    [
      "an uplink the site does not have",
      () => probe({ uplinks: [{ id: "isp9", interface: "lo" }] }),
      /^✗ heartbeat through isp9: refused by the edge \(validation_failed: invalid heartbeat; uplink: no uplink "isp9" in the site config\); fix: the config's uplinks\[\]\.id must be the site's uplink ids/m,
    ],
    [
      "a probe on the wrong uplink",
      () => probe({ uplinks: [{ id: "isp2", interface: "lo" }] }),
      /^✗ heartbeat through isp2: refused by the edge \(validation_failed: invalid heartbeat; uplink: probe "p1" sits behind "isp1"\)/m,
    ],
  ])("%s: ✗ with the edge's reason and the fix, exit 1", async (_what, files, line) => {
    const r = await doctor(files().configPath);
    expect(r.stdout).toMatch(line);
    expect(r.failed).toHaveLength(1);
    expect(r.code).toBe(1);
  });

  it("two uplinks on one interface: ✗, exit 1", async () => {
    const f = agentFiles({
      edge: edge.url,
      site: SITE,
      agent: "srv1",
      role: "server",
      uplinks: [
        { id: "isp1", interface: "lo" },
        { id: "isp2", interface: "lo" },
      ],
    });
    const r = await doctor(f.configPath);
    expect(r.failed).toContain("✗ uplinks isp1 and isp2 share interface lo: each uplink needs its own interface");
    expect(r.code).toBe(1);
  });

  it.skipIf(!existsSync(FAKETIME))(
    "a clock 5 s off: ✗ for the clock (exit 1), while the heartbeat, signed in edge time, is accepted",
    async () => {
      const r = await doctor(probe().configPath, {
        LD_PRELOAD: FAKETIME,
        FAKETIME: "-5s",
        FAKETIME_DONT_FAKE_MONOTONIC: "1",
      });
      expect(r.failed).toHaveLength(1);
      expect(r.failed[0]).toMatch(
        /^✗ clock skew vs edge: (4\.[89]|5\.[01]) s \(over 2 s: .*timedatectl set-ntp true\)$/,
      );
      expect(r.stdout).toMatch(/^✓ heartbeat through isp1: accepted/m);
      expect(r.code).toBe(1);
    },
  );
});

describe("a running agent the edge refuses", () => {
  it("says so once at error level with the fix, keeps trying, and `agent status` shows the refusal as the last error", async () => {
    const f = probe({ heartbeatMs: 250 }, "not-the-secret-the-edge-issued-000");
    const d = Daemon.start(["agent", "run", "--config", f.configPath]);
    try {
      await d.waitFor(
        (l) => l.level === "error" && String(l.msg).startsWith("the edge refuses this agent (bad_signature"),
        "the error line",
      );
      await new Promise((r) => setTimeout(r, 2_000));
      const errors = d.lines.filter((l) => l.level === "error");
      expect(errors).toHaveLength(1);
      expect(errors[0]!.msg).toContain("fix: the secret in");
      expect(d.child.exitCode).toBeNull();
      const st = await wanwatch(["agent", "status", "--config", f.configPath]);
      expect(st.stdout).toMatch(
        /^last error: the edge refuses this agent \(bad_signature: .*\); fix: the secret in .* is not agent p1's/m,
      );
    } finally {
      d.child.kill("SIGTERM");
    }
    expect((await d.exit).code).toBe(0);
  });

  it("revoked after it was accepted: closes, says why on stderr, exits 2 (systemd does not restart it)", async () => {
    const f = probe({ agent: "p2", heartbeatMs: 250 }, secrets.get("p2")!);
    const d = Daemon.start(["agent", "run", "--config", f.configPath]);
    try {
      await d.waitFor((l) => l.msg === "edge answering", "accepted by the edge");
      await edge.api("DELETE", `/v1/sites/${SITE}/agents/p2`);
      expect(await d.exit).toEqual({ code: 2, signal: null });
      expect(d.stderr).toMatch(
        /^wanwatch: agent p2 was revoked in site office .*: stopping; agent p2 is not enrolled in site office/,
      );
      expect(d.stderr.trim().split("\n")).toHaveLength(1);
      expect(d.lines.some((l) => l.msg === "stopped")).toBe(true);
    } finally {
      d.child.kill("SIGKILL");
    }
  });

  it("never accepted and unknown to the edge: an error with the fix, but it keeps running (it may be enrolled next)", async () => {
    const f = probe({ agent: "p9", heartbeatMs: 250 });
    const d = Daemon.start(["agent", "run", "--config", f.configPath]);
    try {
      await d.waitFor(
        (l) => l.level === "error" && String(l.msg).startsWith("the edge refuses this agent (unknown_agent"),
        "the error line",
      );
      await new Promise((r) => setTimeout(r, 1_000));
      expect(d.child.exitCode).toBeNull();
    } finally {
      d.child.kill("SIGTERM");
    }
    expect((await d.exit).code).toBe(0);
  });
});
