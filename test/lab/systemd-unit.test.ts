// The unit `wanwatch agent install` writes, under a real systemd as PID 1 (a Debian 12 rootfs in
// systemd-nspawn, with Node 18 as Debian's apt installs it): started, restarted after SIGKILL,
// stopped with its policy routing removed, not restarted on a config error, uninstalled; and the
// one-line install from the edge's own script, redeeming an enrolment token.
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startLocalEdge, type LocalEdge } from "../../tools/local-edge.ts";
import { sh, waitUntil } from "../../lab/netns.ts";
import {
  bookwormRootfs,
  bootSystemdBox,
  systemdBoxUnavailable,
  writeInside,
  type SystemdBox,
} from "../../lab/systemd-box.ts";
import { BUNDLE, NODE18, buildBundle } from "../../lab/agent-process.ts";
import { tempDir } from "../agent/support.ts";

const NAME = `wwsd${process.pid}`; // netns, machine and cgroup names of this run
const NET = `10.${200 + (process.pid % 50)}`; // addresses inside this run's namespace and its veths
const SITE = "boxed";

let skip: string | null = (await systemdBoxUnavailable()) ?? null;
let rootfs = "";
if (!skip) {
  const r = await bookwormRootfs();
  if ("skip" in r) skip = r.skip;
  else rootfs = r.rootfs;
}
if (skip) console.log(`systemd unit test skipped: ${skip}`);

let edge: LocalEdge;
let box: SystemdBox;
const cleanups: (() => Promise<unknown>)[] = [];

/** Two uplinks, each a veth to the host, which plays both routers; the edge listens on the first. */
async function network(): Promise<void> {
  await sh(["ip", "netns", "add", NAME]);
  cleanups.push(() => sh(["ip", "netns", "del", NAME]));
  await sh(["ip", "-n", NAME, "link", "set", "lo", "up"]);
  for (const i of [1, 2]) {
    const host = `${NAME}h${i}`.slice(-15);
    await sh(["ip", "link", "add", host, "type", "veth", "peer", "name", `up${i}`, "netns", NAME]);
    cleanups.push(() => sh(["ip", "link", "del", host]).catch(() => undefined));
    await sh(["ip", "addr", "add", `${NET}.${i}.1/24`, "dev", host]);
    await sh(["ip", "link", "set", host, "up"]);
    await sh(["ip", "-n", NAME, "addr", "add", `${NET}.${i}.2/24`, "dev", `up${i}`]);
    await sh(["ip", "-n", NAME, "link", "set", `up${i}`, "up"]);
  }
  await sh(["ip", "-n", NAME, "route", "add", "default", "via", `${NET}.1.1`]);
}

const systemctl = (...args: string[]) => box.run(["systemctl", ...args]);
const show = async (prop: string) => (await systemctl("show", "-p", prop, "--value", "wanwatch")).stdout.trim();
const rules = () => sh(["ip", "-n", NAME, "rule", "show"]);
const journal = async () => (await box.run(["journalctl", "-u", "wanwatch", "--no-pager", "-n", "30"])).stdout;
const wanwatchInside = (args: string[], input?: string) =>
  box.exec(["/usr/bin/node", "/opt/wanwatch/wanwatch.mjs", ...args], { input, timeoutMs: 60_000 });

beforeAll(async () => {
  if (skip) return;
  buildBundle();
  await network();
  edge = await startLocalEdge({ host: `${NET}.1.1`, stateDir: tempDir("wanwatch-edge-") });
  cleanups.push(() => edge.stop());
  await edge.api("PUT", `/v1/sites/${SITE}`, {
    uplinks: [
      { id: "isp1", priority: 1 },
      { id: "isp2", priority: 2 },
    ],
    policy: { heartbeatMs: 500, downAfterMs: 2000 },
  });
  // Node 18 where Debian 12's apt puts it; the bundle as `agent install` finds it after a download.
  box = await bootSystemdBox({
    name: NAME,
    rootfs,
    netns: NAME,
    bindsRo: [`${NODE18}:/usr/bin/node`, `${join(BUNDLE, "..")}:/opt/wanwatch`],
  });
  cleanups.push(() => box.stop());
}, 180_000);

afterAll(async () => {
  // Each step on its own: one failing must not leave the others' leftovers behind.
  for (const c of cleanups.reverse()) await c().catch((err) => console.error(`cleanup: ${(err as Error).message}`));
}, 60_000);

describe.skipIf(skip !== null)(`wanwatch.service under a real systemd${skip ? ` — skipped: ${skip}` : ""}`, () => {
  it("server: installed and started; SIGKILL → restarted; stop → policy routing removed; config error → failed once, status shows the line", async () => {
    const { secret } = await edge.api("POST", `/v1/sites/${SITE}/agents`, { id: "srv1", role: "server" });
    const edgeUrl = `http://${NET}.1.1:${new URL(edge.url).port}`;
    const out = await wanwatchInside(
      [
        "agent",
        "install",
        "--edge",
        edgeUrl,
        "--site",
        SITE,
        "--agent",
        "srv1",
        "--role",
        "server",
        "--uplink",
        "isp1=up1",
        "--uplink",
        "isp2=up2",
        "--gateway",
        `isp1=${NET}.1.1`,
        "--gateway",
        `isp2=${NET}.2.1`,
        "--secret-stdin",
      ],
      `${secret}\n`,
    );
    expect(out).toContain("started wanwatch.service (enabled at boot)");
    expect(out, await journal()).toContain("the edge answers agent srv1 through isp1, isp2");
    expect(out).not.toContain(secret);
    expect(await show("ActiveState")).toBe("active");
    expect(await show("ExecStart")).toContain(
      "path=/usr/bin/node ; argv[]=/usr/bin/node /usr/local/lib/wanwatch/wanwatch.mjs agent run --config /etc/wanwatch/agent.yaml",
    );
    expect(await rules()).toMatch(/from \S+ to \S+ ipproto \S+ dport \d+ lookup 1101/);

    // SIGKILL: no chance to clean up; systemd restarts it.
    const first = await show("MainPID");
    await systemctl("kill", "-s", "SIGKILL", "--kill-whom=main", "wanwatch");
    await waitUntil(
      async () =>
        (await show("NRestarts")) === "1" &&
        (await show("ActiveState")) === "active" &&
        (await show("MainPID")) !== first,
      "restart after SIGKILL",
      15_000,
      100,
    );

    // Stop: SIGTERM, and the agent removes its rules and tables on the way out.
    const stop = await systemctl("stop", "wanwatch");
    expect(stop.code).toBe(0);
    expect(await rules(), await journal()).not.toMatch(/lookup 110[12]/);

    // A config error: exit 2, no restart loop, and the one line in `systemctl status`.
    writeInside(
      box.init,
      "/etc/wanwatch/agent.yaml",
      (await box.exec(["cat", "/etc/wanwatch/agent.yaml"])).replace(/^role: server$/m, "role: server\nheartbeatMs: 5"),
    );
    await systemctl("start", "wanwatch");
    await waitUntil(async () => (await show("ActiveState")) === "failed", "failed on the config error", 15_000, 100);
    await new Promise((r) => setTimeout(r, 3_000)); // RestartSec is 2 s: a loop would have restarted by now
    expect(await show("ExecMainStatus")).toBe("2");
    expect(await show("NRestarts")).toBe("0");
    const status = await systemctl("status", "--no-pager", "-n", "5", "wanwatch");
    expect(status.stdout).toContain("heartbeatMs: Too small: expected number to be >=250");
  });

  it("uninstall removes unit, files and routing; a probe then runs as the unprivileged wanwatch user", async () => {
    const un = await wanwatchInside(["agent", "uninstall"]);
    expect(un).toContain("removed /etc/systemd/system/wanwatch.service");
    for (const p of [
      "/etc/wanwatch/agent.yaml",
      "/etc/wanwatch/secret",
      "/usr/local/lib/wanwatch/wanwatch.mjs",
      "/usr/local/bin/wanwatch",
    ])
      expect((await box.run(["test", "-e", p])).code, p).toBe(1);
    expect(await rules()).not.toMatch(/lookup 110[12]/);

    const { secret } = await edge.api("POST", `/v1/sites/${SITE}/agents`, {
      id: "sbc1",
      role: "probe",
      uplink: "isp1",
    });
    const edgeUrl = `http://${NET}.1.1:${new URL(edge.url).port}`;
    const out = await wanwatchInside(
      [
        "agent",
        "install",
        "--edge",
        edgeUrl,
        "--site",
        SITE,
        "--agent",
        "sbc1",
        "--role",
        "probe",
        "--uplink",
        "isp1=up1",
        "--secret-stdin",
      ],
      `${secret}\n`,
    );
    expect(out).toContain("created the system user wanwatch");
    expect(out, await journal()).toContain("the edge answers agent sbc1 through isp1");
    const pid = await show("MainPID");
    expect((await box.exec(["stat", "-c", "%U", `/proc/${pid}`])).trim()).toBe("wanwatch");
    expect((await box.exec(["grep", "^CapEff", `/proc/${pid}/status`])).trim()).toBe("CapEff:\t0000000000000000");
    expect(
      (await box.exec(["stat", "-c", "%a %U", "/etc/wanwatch/agent.yaml", "/etc/wanwatch/secret"])).trim().split("\n"),
    ).toEqual(["600 wanwatch", "600 wanwatch"]);

    // Installing again (a new setting; the secret already there) restarts the service with it.
    const again = await wanwatchInside([
      "agent",
      "install",
      "--edge",
      edgeUrl,
      "--site",
      SITE,
      "--agent",
      "sbc1",
      "--role",
      "probe",
      "--uplink",
      "isp1=up1",
      "--heartbeat",
      "2s",
    ]);
    expect(again, await journal()).toContain("the edge answers agent sbc1 through isp1");
    expect(await show("MainPID")).not.toBe(pid);
    expect(await box.exec(["cat", "/etc/wanwatch/agent.yaml"])).toContain("heartbeatMs: 2000");
  });

  it("the one-line install: the edge's script on Node 18 with no curl, a token redeemed, the unit started and heard", async () => {
    await wanwatchInside(["agent", "uninstall"]);
    const edgeUrl = `http://${NET}.1.1:${new URL(edge.url).port}`;
    const { token } = await edge.api("POST", `/v1/sites/${SITE}/enrolment-tokens`, {
      id: "sbc2",
      role: "probe",
      uplink: "isp1",
    });
    // `curl -fsSL EDGE/install.sh | sudo sh -s -- TOKEN`, with curl on this side of the pipe.
    const script = await (await fetch(`${edgeUrl}/install.sh`)).text();
    expect(await box.exec(["sh", "-c", "command -v curl wget || echo none"])).toBe("none\n");
    const started = performance.now();
    const out = await box.exec(["sh", "-s", "--", token, "--uplink", "isp1=up1"], { input: script, timeoutMs: 90_000 });
    console.log(
      `one-line install: ${((performance.now() - started) / 1000).toFixed(1)} s from the script's start to the edge hearing the agent`,
    );
    expect(out).toMatch(/^wanwatch install: agent \S+ downloaded from http:\/\/\S+, SHA-256 verified$/m);
    expect(out).toContain("enrolled agent sbc2 (probe behind isp1) in site boxed: the edge gave this host its secret");
    expect(out).toContain("started wanwatch.service (enabled at boot)");
    expect(out, await journal()).toContain("the edge answers agent sbc2 through isp1");
    expect(await show("ExecStart")).toContain("/usr/bin/node /usr/local/lib/wanwatch/wanwatch.mjs agent run");
    expect((await box.exec(["readlink", "/usr/local/bin/wanwatch"])).trim()).toBe("../lib/wanwatch/wanwatch.mjs");
    expect((await box.exec(["stat", "-c", "%a %U", "/etc/wanwatch/secret"])).trim()).toBe("600 wanwatch");
  });
});
