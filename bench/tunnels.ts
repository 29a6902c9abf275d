// `npm run bench:tunnels` (root on Linux): the lab site (lab/site.ts) in two tunnel modes, its
// primary uplink cut and restored N times in each. Restart mode: each server has one tunnel,
// restarted by its agent after the switch (`per-server`). Pinned mode: each server has a replica
// per uplink, bound to that uplink's source address; nothing is restarted on a switch, a replica
// when its uplink comes back. Per cut it prints, from what the tunnel endpoint saw (every
// stand-in tunnel sends a keepalive each 100 ms): cut → every server's tunnel traffic arriving
// through isp2, and restore → every server's tunnel live through isp1 again (restart mode: a new
// connection; pinned: the isp1 replica's traffic, restarted, or its connection outlived an outage
// shorter than downAfterMs); then the medians and their ratio.
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { labUnavailable, waitUntil } from "../lab/netns.ts";
import { labServers, LabSite, settled } from "../lab/site.ts";
import { publicAddress } from "../lab/topology.ts";
import { beforeCut, POLICY_FLAGS, policyOf } from "./lib/failover-phase.ts";

const { values } = parseArgs({
  options: {
    cuts: { type: "string", default: "5" },
    ...POLICY_FLAGS,
  },
});
const cuts = Number(values.cuts);
const policy = policyOf(values);
const KEEPALIVE_MS = 100;
const SERVERS = ["srv1", "srv2"];

const why = labUnavailable();
if (why) {
  console.error(`bench:tunnels needs the lab: ${why}`);
  process.exit(2);
}
const servers = labServers();

type Mode = "restart" | "pinned";
interface Cut {
  /** Cut → every server's tunnel traffic arriving through isp2. */
  live: number;
  /** Restore → every server's tunnel traffic through isp1 again. */
  back: number;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
const sec = (ms: number) => (ms / 1000).toFixed(2).padStart(6);

let site: LabSite | null = null;
let cleaning: Promise<void> | null = null;
process.on("SIGINT", () => void (cleaning ??= (site?.destroy() ?? Promise.resolve()).then(() => process.exit(130))));

/** The tunnel of `server` that serves uplink `n` in this mode (its name at the endpoint). */
const tunnelOf = (mode: Mode, server: string, n: 1 | 2) => (mode === "pinned" ? `${server}/isp${n}` : server);

/** Waits until `pick` finds, for every server, an endpoint event since `t0`; the latest first find, from t0. */
async function everyServer(
  t0: number,
  what: string,
  pick: (server: string, since: number) => number | undefined,
): Promise<number> {
  let times: (number | undefined)[] = [];
  await waitUntil(() => (times = SERVERS.map((srv) => pick(srv, t0))).every((t) => t !== undefined), what, 30_000, 20);
  return Math.max(...(times as number[])) - t0;
}

async function measure(mode: Mode): Promise<Cut[]> {
  site = await LabSite.start({
    dir: join(resolve(import.meta.dirname, ".."), ".state", `bench-tunnels-${process.pid}`),
    policy,
    servers,
    pinned: mode === "pinned",
    tunnels: mode === "pinned" ? "none" : "per-server",
    tunnelKeepaliveMs: KEEPALIVE_MS,
  });
  const s = site;
  const through = (n: 1 | 2) => publicAddress(n);
  const traffic = (name: string, n: 1 | 2, since: number, events: string[]) =>
    s
      .tunnelTraffic()
      .find((t) => t.at >= since && t.name === name && t.remote === through(n) && events.includes(t.event))?.at;
  await s.until((st) => st.activeUplink === "isp1" && settled(st, SERVERS), "start on isp1", 60_000);
  await everyServer(0, "every tunnel at the endpoint", (srv) => traffic(tunnelOf(mode, srv, 1), 1, 0, ["hello"]));
  const out: Cut[] = [];
  for (let i = 1; i <= cuts; i++) {
    await beforeCut(policy.heartbeatMs);
    const t0 = Date.now();
    await s.lab.cut(1);
    const live = await everyServer(t0, "tunnel traffic through isp2", (srv, since) =>
      traffic(tunnelOf(mode, srv, 2), 2, since, ["hello", "data"]),
    );
    await s.until((st) => st.activeUplink === "isp2" && settled(st, SERVERS), "failover", 60_000, 50);
    const witnessed = (await s.events()).some(
      (e) => e.kind === "uplink" && e.at >= t0 && !!(e.data as { witnesses?: string[] }).witnesses,
    );
    const t1 = Date.now();
    await s.lab.restore(1);
    // Restart mode: a new connection only; the killed process's queued keepalives and FIN reach the
    // endpoint through isp1 too once it is back. Pinned: the isp1 replica's traffic, restarted or not.
    const back = await everyServer(t1, "tunnel traffic through isp1 again", (srv, since) =>
      traffic(tunnelOf(mode, srv, 1), 1, since, mode === "pinned" ? ["hello", "data"] : ["hello"]),
    );
    await s.until((st) => st.activeUplink === "isp1" && settled(st, SERVERS), "failback", 60_000, 50);
    out.push({ live, back });
    console.log(
      `${mode.padStart(8)} ${String(i).padStart(3)} │ ${witnessed ? "witness" : "silence"} ${sec(live)} │ ${sec(back)}`,
    );
  }
  await s.destroy();
  site = null;
  return out;
}

async function main() {
  console.log(
    `bench:tunnels — ${cuts} cuts per mode; policy heartbeat ${policy.heartbeatMs} ms, downAfter ${policy.downAfterMs} ms, failbackAfter ${policy.failbackAfterMs} ms; keepalive every ${KEEPALIVE_MS} ms`,
  );
  console.log(`servers: ${servers.map((s) => `${s.name} (${s.backend})`).join(", ")}; times in seconds\n`);
  console.log("    mode cut │ down by: cut → live through isp2 │ restore → live through isp1 again");
  const restart = await measure("restart");
  const pinned = await measure("pinned");
  const m = (xs: Cut[], k: keyof Cut) => median(xs.map((x) => x[k]));
  console.log("");
  for (const [k, what] of [
    ["live", "cut → every server's tunnel live through isp2"],
    ["back", "restore → every server's tunnel live through isp1 again"],
  ] as const)
    console.log(
      `${what}: median restart mode ${sec(m(restart, k))} s, pinned mode ${sec(m(pinned, k))} s → restart / pinned = ${(m(restart, k) / m(pinned, k)).toFixed(1)}`,
    );
}

main().catch(async (err) => {
  console.error(`bench:tunnels failed: ${(err as Error).message}`);
  await site?.destroy();
  process.exit(1);
});
