// `npm run bench:agent` (root on Linux): the footprint of one server agent, the bundle
// (dist/wanwatch.mjs) as its own process in the lab (lab/site.ts) heartbeating every second
// through both uplinks to the real edge. It prints start-up times on Node 22 and the machine's
// Node 20, then resident memory and CPU share over --seconds (default 60) against the targets.
// A missed target is printed, never fatal (machines are noisy); an agent the edge did not hear
// through both uplinks all along is: exit 1.
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import type { SiteStatus } from "#shared";
import { Daemon, NODE20, NODE22, wanwatch } from "../lab/agent-process.ts";
import { alive, labUnavailable } from "../lab/netns.ts";
import { LabSite, SITE, settled } from "../lab/site.ts";
import { cpuMs, memoryMb, percentile } from "./lib/proc.ts";
import { objectUsage } from "./lib/usage.ts";

const { values } = parseArgs({
  options: { seconds: { type: "string", default: "60" }, node: { type: "string", default: NODE22 } },
});
const seconds = Number(values.seconds);
if (!(seconds > 0)) {
  console.error(
    "usage: bench/agent.ts [--seconds N] [--node PATH]   (N > 0; the footprint's Node, default the project's 22)",
  );
  process.exit(2);
}
const policy = { heartbeatMs: 1000, downAfterMs: 3000, failbackAfterMs: 60_000, minDwellMs: 10_000 };
const AGENT = "srv1";
const UPLINKS = ["isp1", "isp2"];
const TARGET_MB = 60;
const TARGET_CPU_PERCENT = 1;
// Odd, so that the median is one of the runs.
const STARTS = 3;
const VERSION_RUNS = 5;

const why = labUnavailable();
if (why) {
  console.error(`bench:agent needs the lab: ${why}`);
  process.exit(2);
}

// One server on both LANs (iproute2, no NetworkManager): the smallest site with two uplinks.
// LabSite.start builds the bundle afresh, so the figures are always those of the current source.
const starting = LabSite.start({
  dir: join(resolve(import.meta.dirname, ".."), ".state", `bench-agent-${process.pid}`),
  policy,
  servers: [{ name: AGENT, backend: "iproute2", node: NODE22 }],
});
let finishing: Promise<never> | null = null;
/** Removes the lab once, however many signals arrive, then exits; a start under way is waited for, its namespaces must go too. */
const finish = (code: number) =>
  (finishing ??= starting
    .then(
      (s) => s.destroy(),
      () => undefined,
    )
    .then(() => process.exit(code)));
for (const sig of ["SIGINT", "SIGTERM"] as const) process.on(sig, () => void finish(130));

const agentOf = (s: SiteStatus) => s.agents.find((a) => a.id === AGENT);
const median = (xs: number[]) => percentile(xs, 50);
const nodeVersion = (node: string) => execFileSync(node, ["--version"], { encoding: "utf8" }).trim();
const verdict = (ok: boolean) => (ok ? "PASS" : "FAIL");
// File pages are mostly the Node binary's code, shared with every Node process on the host.
const fileMb = (pid: number) =>
  Number(/^RssFile:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"))![1]) / 1024;

/** Spawns the agent on `node`; resolves once the edge accepted its first heartbeat, with the time from spawn (edge clock, same machine). */
async function spawnAgent(site: LabSite, node: string): Promise<{ pid: number; ms: number }> {
  const t0 = Date.now();
  const d = Daemon.start(["agent", "run", "--config", site.configPath(AGENT)], {
    netns: site.server(AGENT).ns.name,
    node,
  });
  // Registered with the site, so that stopAgent and the lab's cleanup stop it gracefully.
  site.agents.set(AGENT, d);
  const st = await site
    .until((s) => (agentOf(s)?.lastSeenAt ?? 0) >= t0, `${AGENT}'s first heartbeat`, 20_000, 50)
    .catch((err) => {
      throw new Error(`${(err as Error).message}\n${AGENT} stderr: ${d.stderr}`);
    });
  return { pid: d.child.pid!, ms: agentOf(st)!.lastSeenAt! - t0 };
}

/** Spawn to exit of `wanwatch --version`: Node's start plus loading the whole bundle, nothing else. */
async function versionMs(node: string): Promise<number> {
  const t0 = performance.now();
  const r = await wanwatch(["--version"], { node });
  if (r.code !== 0) throw new Error(`wanwatch --version on ${node}: exit ${r.code}: ${r.stderr}`);
  return performance.now() - t0;
}

async function main(): Promise<number> {
  console.log(
    `bench:agent — one server agent (${AGENT}, iproute2) heartbeating every ${policy.heartbeatMs} ms through ${UPLINKS.join(" and ")} to the real edge in the lab`,
  );
  const site = await starting;
  // The probes teach the edge each uplink's public address: from then on a heartbeat that left
  // through the wrong uplink shows as misrouted. Then every agent stops, so that the edge hears
  // only the one being measured and the machine runs nothing else of ours.
  await site.until(
    (s) => s.activeUplink === "isp1" && settled(s, [AGENT]) && s.uplinks.every((u) => u.observedIp !== null),
    "the site to settle on isp1",
    60_000,
  );
  await Promise.all(["sbc1", "sbc2", AGENT].map((a) => site.stopAgent(a)));

  console.log(
    "\nstart-up: spawn → first heartbeat accepted by the edge (sent once the channel opens); process start: wanwatch --version",
  );
  for (const node of [NODE22, ...(existsSync(NODE20) ? [NODE20] : [])]) {
    const accepted: number[] = [];
    for (let i = 0; i < STARTS; i++) {
      accepted.push((await spawnAgent(site, node)).ms);
      await site.stopAgent(AGENT);
    }
    const version: number[] = [];
    for (let i = 0; i < VERSION_RUNS; i++) version.push(await versionMs(node));
    console.log(
      `  Node ${nodeVersion(node).padEnd(8)} first heartbeat accepted after ${median(accepted)} ms (median of ${STARTS}: ${accepted.join(", ")}); --version ${median(version).toFixed(0)} ms (median of ${VERSION_RUNS})`,
    );
  }

  console.log(
    `\nfootprint: ${seconds} s of steady heartbeats on Node ${nodeVersion(values.node)}, from its first accepted heartbeat`,
  );
  const { pid } = await spawnAgent(site, values.node);
  const edge = { url: site.hostUrl, adminToken: site.edge.adminToken };
  const messages = async () => (await objectUsage(edge, SITE)).webSocketMessages;
  const start = { cpu: cpuMs(pid), rss: memoryMb(pid).rss, at: performance.now() };
  // The edge's count, read every second and summed: it starts afresh when the site's object
  // restarts (wrangler dev reloads the Worker whenever worker/ changes; a read may fail meanwhile).
  let heard = 0;
  let restarted = false;
  let last = await messages();
  for (const end = start.at + seconds * 1000; performance.now() < end; ) {
    await new Promise((r) => setTimeout(r, Math.min(1000, end - performance.now())));
    const m = await messages().catch(() => null);
    if (m === null) continue;
    if (m < last) restarted = true;
    heard += m < last ? m : m - last;
    last = m;
  }
  const wall = (performance.now() - start.at) / 1000;
  const cpu = (cpuMs(pid) - start.cpu) / 10 / wall; // ms of CPU per s of wall time / 10 = % of one core
  const mem = memoryMb(pid);
  const file = fileMb(pid);
  const st = await site.status();
  console.log(
    `  RSS  peak ${mem.peak.toFixed(1)} MB (VmHWM, start-up included), final ${mem.rss.toFixed(1)} MB (${start.rss.toFixed(1)} MB at the start)   target ≤ ${TARGET_MB} MB: ${verdict(mem.peak <= TARGET_MB)}`,
  );
  console.log(
    `       of the final: ${file.toFixed(1)} MB file pages (RssFile), ${(mem.rss - file).toFixed(1)} MB the process's own`,
  );
  console.log(
    `  CPU  ${cpu.toFixed(2)} % of one core (utime+stime over ${wall.toFixed(1)} s)   target ≤ ${TARGET_CPU_PERCENT} %: ${verdict(cpu <= TARGET_CPU_PERCENT)}`,
  );

  // Heartbeating, as the edge saw it: through both uplinks (neither misrouted), lately, and at the policy's rate.
  const a = agentOf(st);
  const ago = a ? (st.now - (a.lastSeenAt ?? 0)) / 1000 : Infinity;
  const expected = (UPLINKS.length * wall * 1000) / policy.heartbeatMs;
  console.log(
    `  edge ${heard} heartbeats over WebSocket in the window (${expected.toFixed(0)} due${restarted ? "; the edge restarted meanwhile" : ""}), ` +
      `heard through ${a?.uplinksSeen.join(", ") || "no uplink"} (misrouted: ${a?.misroutedUplinks.join(", ") || "none"}), last ${ago.toFixed(1)} s ago${a?.lastError ? `, lastError: ${a.lastError}` : ""}`,
  );
  const problems = [
    !alive(pid) && "the agent exited",
    !UPLINKS.every((u) => a?.uplinksSeen.includes(u)) && `not heard lately through every uplink`,
    a?.misroutedUplinks.length && `misrouted: ${a.misroutedUplinks.join(", ")}`,
    ago > (2 * policy.heartbeatMs) / 1000 && `last heard ${ago.toFixed(1)} s ago`,
    Math.abs(heard - expected) > Math.max(2, 0.1 * expected) &&
      `${heard} heartbeats where ${expected.toFixed(0)} were due`,
  ].filter((p): p is string => typeof p === "string");
  if (problems.length) {
    console.error(`bench:agent: the agent was not heartbeating as it should: ${problems.join("; ")}`);
    return 1;
  }
  return 0;
}

main().then(finish, (err) => {
  // After a signal, errors come from the lab being removed under the run: not worth printing.
  if (!finishing) console.error(`bench:agent failed: ${(err as Error).message}`);
  return finish(1);
});
