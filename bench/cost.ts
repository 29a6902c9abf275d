// `npm run bench:cost`: what a day of the reference site (2 uplinks, isp2 metered unless
// --unmetered, 2 probes, 5 servers, 1 s heartbeats over WebSocket, a failover and a failback)
// costs on Cloudflare, counted from the real Worker in workerd (Miniflare) and priced with
// bench/rates.json. The agents heartbeat each uplink at the interval the edge gives them (a
// metered standby slowly), as the real agent does.
//
// workerd's clock cannot be sped up from outside, so the day is composed from measured parts, at
// real pace: a steady stretch (at least one 5-minute checkpoint of liveness to SQLite) gives the
// units per second; an outage with its failover and failback gives the extra units per pair of
// switches. Units are counted at the edge (its metrics: rows read and written by every SQLite
// cursor, alarms set and run, WebSocket messages received) and at the client (connections).
import { parseArgs } from "node:util";
import { startMiniflareEdge } from "../tools/miniflare-edge.ts";
import type { ObjectUsage } from "../worker/src/metrics.ts";
import { enrolSite, streams } from "./lib/load-agent.ts";
import { fitsFree, freeShares, paidMonthlyUsd, rates, type DailyUnits } from "./lib/pricing.ts";
import { cpuMs } from "./lib/proc.ts";
import { Pacer, sleep } from "./lib/site-run.ts";
import { objectUsage } from "./lib/usage.ts";

const { values } = parseArgs({
  options: {
    "steady-seconds": { type: "string", default: "320" },
    "outage-seconds": { type: "string", default: "20" },
    "switch-pairs-per-day": { type: "string", default: "2" },
    unmetered: { type: "boolean", default: false },
  },
});
const steadySeconds = Number(values["steady-seconds"]);
const outageSeconds = Number(values["outage-seconds"]);
const pairsPerDay = Number(values["switch-pairs-per-day"]);
const SITE = "office";
const DAY_S = 86_400;
// The reference site runs the default policy.
const policy = { heartbeatMs: 1_000, downAfterMs: 3_000, failbackAfterMs: 60_000, minDwellMs: 10_000 };

const minus = (a: ObjectUsage, b: ObjectUsage): ObjectUsage =>
  Object.fromEntries(
    Object.keys(a).map((k) => [k, a[k as keyof ObjectUsage] - b[k as keyof ObjectUsage]]),
  ) as unknown as ObjectUsage;
const scale = (a: ObjectUsage, f: number): ObjectUsage =>
  Object.fromEntries(Object.entries(a).map(([k, v]) => [k, v * f])) as unknown as ObjectUsage;

const edge = await startMiniflareEdge();
let exitCode = 0;
try {
  const metered = !values.unmetered;
  const agents = await enrolSite(edge, SITE, { servers: 5, policy, tunnels: { restart: "cluster" }, metered });
  const streamCount = streams(agents).length;
  const connects = streamCount;
  const pacer = new Pacer([{ site: SITE, agents }], policy.heartbeatMs);
  pacer.start();
  console.log(
    `reference site: 2 probes, 5 servers, ${streamCount} heartbeat streams at ${policy.heartbeatMs} ms${metered ? " (isp2 metered: its probe every 30 s, the servers every 600 s while it stands by)" : ""}; ${steadySeconds} s steady, then a ${outageSeconds} s outage of isp1 and its failback`,
  );
  // The first choice of uplink waits out the primary's first downAfterMs.
  await sleep(policy.downAfterMs + 2_000);

  const u0 = await objectUsage(edge, SITE);
  const cpu0 = cpuMs(edge.workerdPid);
  await sleep(steadySeconds * 1000);
  const u1 = await objectUsage(edge, SITE);
  const cpuMsPerEvent =
    (cpuMs(edge.workerdPid) - cpu0) /
    Math.max(1, u1.webSocketMessages - u0.webSocketMessages + u1.alarmRuns - u0.alarmRuns);
  const t1 = performance.now();
  pacer.cut.add(`${SITE}/isp1`);
  await sleep(outageSeconds * 1000);
  pacer.cut.clear();
  const status = async () =>
    (await edge.api("GET", `/v1/sites/${SITE}/status`)) as { activeUplink: string; generation: number };
  const deadline = performance.now() + policy.failbackAfterMs + 30_000;
  while ((await status()).activeUplink !== "isp1" && performance.now() < deadline) await sleep(500);
  await sleep(3_000);
  const u2 = await objectUsage(edge, SITE);
  const switchSeconds = (performance.now() - t1) / 1000;
  pacer.stop();

  const switches = (
    (await edge.api("GET", `/v1/sites/${SITE}/events?limit=200`)) as { kind: string; data: { reason?: string } }[]
  ).filter((e) => e.kind === "switch" && e.data.reason !== "initial");
  if (switches.length !== 2 || pacer.refused > 0) {
    console.error(
      `FAIL: expected one failover and one failback, saw ${switches.length} switches; ${pacer.refused} heartbeats refused ${pacer.firstErrors.join("; ")}`,
    );
    exitCode = 1;
  }

  const steady = scale(minus(u1, u0), 1 / steadySeconds);
  const pair = minus(minus(u2, u1), scale(steady, switchSeconds));
  const perDay = (x: keyof ObjectUsage) => steady[x] * DAY_S + Math.max(0, pair[x]) * pairsPerDay;
  const b = rates.billing;

  /** A day at heartbeat interval h (downAfterMs = 3 h): messages scale with 1/h; alarms with the silence deadline. */
  const dayAt = (h: number): DailyUnits => {
    const k = policy.heartbeatMs / h;
    // Steady alarms come once per silence deadline plus the backstop; the deadline grows with h.
    const alarmPeriod = DAY_S / Math.max(1, perDay("alarmRuns"));
    const alarmK = alarmPeriod / (alarmPeriod + (3 * (h - policy.heartbeatMs)) / 1000);
    const alarms = perDay("alarmRuns") * alarmK;
    const alarmsSet = perDay("alarmsSet") * alarmK;
    // Hibernatable and idle between messages, the object is billed only while a handler runs: at
    // most the workerd CPU measured per event (no handler waits on I/O in steady state).
    const events = perDay("webSocketMessages") * k + alarms;
    return {
      workerRequests: connects,
      doRequests: (perDay("webSocketMessages") * k) / b.webSocketMessagesPerRequest + alarms + connects,
      doGbSeconds: ((events * cpuMsPerEvent) / 1000) * b.objectMemoryGb,
      rowsRead: perDay("rowsRead"),
      rowsWritten: perDay("rowsWritten") + (b.setAlarmWritesRow ? alarmsSet : 0),
    };
  };

  const day = dayAt(policy.heartbeatMs);
  const shares = freeShares(day);
  console.log(
    `\nmeasured per second of steady state: ${steady.webSocketMessages.toFixed(2)} WebSocket messages, ${steady.alarmRuns.toFixed(3)} alarm runs, ${steady.alarmsSet.toFixed(3)} alarms set, ${steady.rowsWritten.toFixed(4)} rows written, ${steady.rowsRead.toFixed(4)} rows read`,
  );
  console.log(
    `workerd CPU per event (message or alarm): ${cpuMsPerEvent.toFixed(3)} ms, taken as the billed wall time of its handler`,
  );
  console.log(
    `measured per failover + failback (${switchSeconds.toFixed(0)} s, beyond steady state): ${pair.rowsWritten.toFixed(0)} rows written, ${pair.rowsRead.toFixed(0)} rows read, ${pair.alarmRuns.toFixed(0)} alarm runs`,
  );
  console.log(`\none site, one day (${pairsPerDay} failovers and failbacks):`);
  const line = (what: string, used: number, allowance: number, share: number) =>
    console.log(
      `  ${what.padEnd(28)} ${Math.round(used).toLocaleString("en").padStart(12)}   of ${allowance.toLocaleString("en").padStart(11)} free/day   ${(share * 100).toFixed(1).padStart(5)} %`,
    );
  line("Worker requests", day.workerRequests, rates.workers.free.requestsPerDay, shares.workerRequests);
  line("Durable Object requests", day.doRequests, rates.durableObjects.free.requestsPerDay, shares.doRequests);
  line("Durable Object GB-s", day.doGbSeconds, rates.durableObjects.free.gbSecondsPerDay, shares.doGbSeconds);
  line("SQLite rows read", day.rowsRead, rates.durableObjects.free.rowsReadPerDay, shares.rowsRead);
  line("SQLite rows written", day.rowsWritten, rates.durableObjects.free.rowsWrittenPerDay, shares.rowsWritten);
  console.log(`  fits the Workers Free plan: ${fitsFree(day) ? "yes" : "NO"}`);

  // Below this interval the site no longer fits Free (searched in 10 ms steps).
  let limit = policy.heartbeatMs;
  while (limit > 250 && fitsFree(dayAt(limit - 10))) limit -= 10;
  while (!fitsFree(dayAt(limit)) && limit < 60_000) limit += 10;
  const tight = Object.entries(freeShares(dayAt(limit - 10))).sort((x, y) => y[1] - x[1])[0]!;
  console.log(
    `  stops fitting Free below a heartbeat of ${limit} ms (${limit <= 250 ? "the policy's minimum" : `first limit reached: ${tight[0]}`}; downAfterMs kept at 3 × heartbeat)`,
  );
  console.log(`\nWorkers Paid, per month (${rates.daysPerMonth} days), 1 s heartbeats:`);
  for (const n of [1, 10, 100])
    console.log(`  ${String(n).padStart(3)} site${n > 1 ? "s" : " "}  $${paidMonthlyUsd(day, n).toFixed(2)}`);
  // What the $5 plan holds: sites at this policy, and the heartbeat at which 10 sites fit (the
  // cost goal), searched in 100 ms steps: incoming WebSocket messages are billed 20 to a request.
  let held = 0;
  while (paidMonthlyUsd(day, held + 1) <= rates.workers.paid.baseUsdPerMonth) held++;
  let tenFit = policy.heartbeatMs;
  while (paidMonthlyUsd(dayAt(tenFit), 10) > rates.workers.paid.baseUsdPerMonth && tenFit < 60_000) tenFit += 100;
  console.log(
    `  the $${rates.workers.paid.baseUsdPerMonth} plan alone holds ${held} site${held === 1 ? "" : "s"} at this policy; 10 sites fit it at a heartbeat of ${tenFit} ms (downAfterMs 3 × heartbeat)`,
  );
  console.log(`\nrates: ${rates.checked} (${rates.workers.source}, ${rates.durableObjects.source})`);
  for (const a of agents) a.close();
} finally {
  await edge.stop();
}
process.exit(exitCode);
