// Witness reports on the lab site at the default policy (1 s heartbeats, down after 3 s): a cut is
// failed over on the servers' reports, before downAfterMs; local faults — one server's LAN port,
// a dead probe, a lossy or a slow primary — never take the primary down on witnesses. Outcomes are
// asserted; the cut's timeline is printed (bench:failover measures it properly).
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { SiteStatus } from "#shared";
import { labUnavailable } from "../../lab/netns.ts";
import { labServers, LabSite, settled } from "../../lab/site.ts";
import { delayLineUnavailable, routeToEdge } from "../../lab/topology.ts";
import { ROOT } from "../../lab/agent-process.ts";

const why = labUnavailable();
const noDelayLine = delayLineUnavailable();
const POLICY = { heartbeatMs: 1_000, downAfterMs: 3_000, failbackAfterMs: 4_000, minDwellMs: 0 };
const SERVERS = ["srv1", "srv2"];
let site: LabSite;

beforeAll(async () => {
  if (why) return;
  const servers = labServers();
  site = await LabSite.start({ dir: join(ROOT, ".state", `witness-lab-${process.pid}`), policy: POLICY, servers });
}, 120_000);

afterAll(async () => {
  await site?.destroy();
}, 60_000);

const on = (uplink: string) => (s: SiteStatus) => s.activeUplink === uplink && settled(s, SERVERS);
const routes = () => Promise.all(site.lab.servers.map((s) => routeToEdge(s.ns)));
const after = async (t: number) => (await site.events()).filter((e) => e.at >= t);
/** Uplink events that took isp1 down on witnesses since `t`. */
const witnessed = async (t: number) =>
  (await after(t)).filter((e) => e.kind === "uplink" && (e.data as { witnesses?: string[] }).witnesses);
const switchesSince = async (t: number) => (await after(t)).filter((e) => e.kind === "switch");
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function baseline(): Promise<void> {
  for (const n of [1, 2] as const) await site.lab.routerUp(n);
  await site.until(on("isp1"), "baseline: everyone on isp1", 40_000);
  // Every channel answering for a while: the RTT window holds no outage from an earlier scenario.
  await sleep(3_000);
}

/** Runs `fault` for `ms`, mends it, and says what the site did meanwhile. */
async function during(fault: () => Promise<unknown>, mend: () => Promise<unknown>, ms: number) {
  await baseline();
  const t0 = Date.now();
  await fault();
  try {
    await sleep(ms);
    return { witnessed: await witnessed(t0), switches: await switchesSince(t0), status: await site.status() };
  } finally {
    await mend();
  }
}

describe.skipIf(why)("witness reports in the lab (default policy)", () => {
  it("a cut: both servers witness it, isp1 is down before downAfterMs, every server moves", async () => {
    await baseline();
    const cutAt = Date.now();
    await site.lab.cut(1);
    const down = await site.until(on("isp2"), "failover to isp2", 20_000);
    expect(await routes()).toEqual(["lan2", "lan2"]);
    const [byWitnesses] = await witnessed(cutAt);
    expect(byWitnesses?.data).toMatchObject({ uplink: "isp1", to: "down", witnesses: ["srv1", "srv2"] });
    const [sw] = await switchesSince(cutAt);
    expect(sw?.data).toMatchObject({ from: "isp1", to: "isp2", reason: "failover" });
    const timeline = [`isp1 down on witnesses +${byWitnesses!.at - cutAt} ms`, `failover +${sw!.at - cutAt} ms`];
    for (const id of SERVERS) {
      const lines = site.log(id).filter((l) => Date.parse(l.time) >= cutAt);
      const first = (msg: string) => lines.find((l) => l.msg === msg && l.generation === down.generation);
      const applying = first("applying directive");
      const switched = first("routes switched") ?? first("routes already right");
      timeline.push(
        `${id}: directive +${applying ? Date.parse(applying.time) - cutAt : "?"} ms, routes +${switched ? Date.parse(switched.time) - cutAt : "?"} ms`,
      );
    }
    console.log(`witness lab, a cut of isp1: ${timeline.join("; ")}`);
    await site.lab.restore(1);
    await site.until(on("isp1"), "failback to isp1", 30_000);
  }, 90_000);

  it("one server's LAN port to isp1's router down: no switch", async () => {
    const srv1 = site.server("srv1");
    const r = await during(
      () => srv1.ns.ip("link", "set", "lan1", "down"),
      () => srv1.ns.ip("link", "set", "lan1", "up"),
      9_000,
    );
    expect(r.witnessed).toEqual([]);
    expect(r.switches).toEqual([]);
    expect(r.status.activeUplink).toBe("isp1");
  }, 90_000);

  it("isp1's probe dead: no switch", async () => {
    const r = await during(
      () => site.stopAgent("sbc1", "SIGKILL"),
      async () => void site.startAgent("sbc1"),
      9_000,
    );
    expect(r.witnessed).toEqual([]);
    expect(r.switches).toEqual([]);
  }, 90_000);

  it.skipIf(noDelayLine)(
    "a slow primary (300 ms each way): no switch",
    async () => {
      const r = await during(
        () => site.lab.delayed(1, 300),
        () => site.lab.delayed(1, 0),
        15_000,
      );
      expect(r.witnessed).toEqual([]);
      expect(r.switches).toEqual([]);
    },
    90_000,
  );

  // Last: its probe's verdict keeps isp1 degraded for a minute after (the site stays on isp2).
  it("a lossy primary (35 %): never taken down on witnesses", async () => {
    const r = await during(
      () => site.lab.lossy(1, 35),
      () => site.lab.lossy(1, 0),
      25_000,
    );
    expect(r.witnessed).toEqual([]);
    console.log(`witness lab, 35 % loss for 25 s: switches ${JSON.stringify(r.switches.map((e) => e.message))}`);
  }, 120_000);
});
