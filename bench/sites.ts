// `npm run bench:sites`: many sites (default 1,000, 2 probes and 5 servers each: 12 heartbeat
// streams a site) against one local workerd (Miniflare). Prints enrolment time, the heartbeat rate
// workerd sustains across all of them, round trips, workerd's memory per site, and proves
// isolation: one site's primary is cut, that site fails over, and no other site records a switch
// or a change of uplink state. Fails if isolation does not hold.
//
// Probes speak over WebSocket, servers over HTTP (the agents' fallback transport): workerd holds
// two descriptors per WebSocket, and 12,000 of them exceed what a process may open here (20,000).
import { parseArgs } from "node:util";
import { startMiniflareEdge } from "../tools/miniflare-edge.ts";
import { enrolSite, streams, type LoadAgent } from "./lib/load-agent.ts";
import { cpuMs, memoryMb, percentile } from "./lib/proc.ts";
import { Pacer, sleep } from "./lib/site-run.ts";

const { values } = parseArgs({
  options: {
    sites: { type: "string", default: "1000" },
    "burst-seconds": { type: "string", default: "10" },
  },
});
const siteCount = Number(values.sites);
const burstSeconds = Number(values["burst-seconds"]);
// Slow enough that every site stays up at a rate 2 cores sustain for 12,000 streams.
const policy = { heartbeatMs: 20_000, downAfterMs: 45_000, failbackAfterMs: 600_000, minDwellMs: 0 };
const name = (i: number) => `site-${String(i).padStart(4, "0")}`;

/** Runs `fn` over `items`, `limit` at a time. */
async function pool<T, R>(items: T[], limit: number, fn: (x: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: limit }, async () => {
      while (next < items.length) {
        const i = next++;
        out[i] = await fn(items[i]!);
      }
    }),
  );
  return out;
}

const edge = await startMiniflareEdge();
let failed = false;
try {
  const enrol = async (site: string) => ({
    site,
    agents: await enrolSite(edge, site, { servers: 5, policy, connect: false }),
  });
  // The baseline has the Worker's isolate loaded: what each further site adds is the object.
  const first = await enrol(name(0));
  const baseline = memoryMb(edge.workerdPid).rss;
  let t = performance.now();
  const sites = [
    first,
    ...(await pool(
      Array.from({ length: siteCount - 1 }, (_, i) => name(i + 1)),
      16,
      enrol,
    )),
  ];
  const enrolS = (performance.now() - t) / 1000;
  t = performance.now();
  // Like real agents, a refused connect is tried again (the count is printed).
  let retried = 0;
  await pool(
    sites.flatMap((s) => s.agents.filter((a) => a.id.startsWith("sbc"))),
    64,
    async (a: LoadAgent) => {
      for (let attempt = 1; ; attempt++)
        try {
          return await a.connect(a.uplinks.filter((u) => !a.connected(u)));
        } catch (err) {
          if (attempt === 3) throw err;
          retried++;
          await sleep(200 * attempt);
        }
    },
  );
  const connectS = (performance.now() - t) / 1000;
  const all = sites.flatMap((s) => streams(s.agents));
  console.log(
    `${siteCount} sites, ${all.length} heartbeat streams (${siteCount * 2} WebSockets): enrolled (${siteCount * 8} admin calls) in ${enrolS.toFixed(1)} s, connected in ${connectS.toFixed(1)} s (${retried} connects tried again)`,
  );

  // One round first: each site's primary is heard and chosen at once.
  await pool(all, 64, ({ agent, uplink }) => agent.heartbeat(uplink));
  const pacer = new Pacer(sites, policy.heartbeatMs);
  pacer.start();

  // Burst, on top of the paced load: 256 senders go round all streams, back to back.
  const cpu0 = cpuMs(edge.workerdPid);
  const paced0 = pacer.sent;
  const rtts: number[] = [];
  t = performance.now();
  let turn = 0;
  await Promise.all(
    Array.from({ length: 256 }, async () => {
      while (performance.now() - t < burstSeconds * 1000) {
        const { agent, uplink } = all[turn++ % all.length]!;
        rtts.push(await agent.heartbeat(uplink));
      }
    }),
  );
  const burstS = (performance.now() - t) / 1000;
  const cpu = cpuMs(edge.workerdPid) - cpu0;
  const handled = rtts.length + pacer.sent - paced0;
  const mem = memoryMb(edge.workerdPid);
  console.log(
    `burst across all sites for ${burstS.toFixed(0)} s: ${(handled / burstS).toFixed(0)} heartbeats/s in all (${((pacer.sent - paced0) / burstS).toFixed(0)} paced + ${(rtts.length / burstS).toFixed(0)} burst), burst p50 ${percentile(rtts, 50).toFixed(1)} ms, p99 ${percentile(rtts, 99).toFixed(1)} ms, workerd CPU ${(cpu / handled).toFixed(3)} ms per heartbeat`,
  );
  console.log(
    `workerd memory: ${mem.rss.toFixed(0)} MB resident (peak ${mem.peak.toFixed(0)} MB; ${baseline.toFixed(0)} MB with one site): ${(((mem.rss - baseline) * 1024) / (siteCount - 1)).toFixed(0)} KB per further site`,
  );

  // Isolation: cut the primary of one site in the middle; only it may switch.
  const victim = sites[Math.floor(siteCount / 2)]!.site;
  pacer.cut.add(`${victim}/isp1`);
  t = performance.now();
  const active = async (site: string) =>
    ((await edge.api("GET", `/v1/sites/${site}/status`)) as { activeUplink: string }).activeUplink;
  while ((await active(victim)) !== "isp2" && performance.now() - t < policy.downAfterMs + 30_000) await sleep(1_000);
  const failoverS = (performance.now() - t) / 1000;
  pacer.stop();
  const touched = await pool(sites, 16, async ({ site }) => {
    const ev = (await edge.api("GET", `/v1/sites/${site}/events?limit=50`)) as {
      kind: string;
      data: { reason?: string; from?: string };
    }[];
    // Not counted: each uplink's first "unknown → up" and the first choice.
    return {
      site,
      switches: ev.filter((e) => e.kind === "switch" && e.data.reason !== "initial").length,
      uplinkChanges: ev.filter((e) => e.kind === "uplink" && e.data.from !== "unknown").length,
    };
  });
  const others = touched.filter((s) => s.site !== victim && (s.switches > 0 || s.uplinkChanges > 0));
  const mine = touched.find((s) => s.site === victim)!;
  console.log(
    `isolation: ${victim} failed over ${failoverS.toFixed(0)} s after its cut (${mine.switches} switch); ${others.length} of ${siteCount - 1} other sites recorded a switch or an uplink change; ${pacer.refused} of ${pacer.sent} paced heartbeats refused`,
  );
  if (mine.switches !== 1 || others.length || pacer.refused) {
    console.error(
      `FAIL: isolation: ${JSON.stringify({ victim: mine, others: others.slice(0, 5), refused: pacer.firstErrors })}`,
    );
    failed = true;
  }
  for (const { agents } of sites) for (const a of agents) a.close();
} finally {
  await edge.stop();
}
process.exit(failed ? 1 : 0);
