// `npm run bench:swarm` (root on Linux): the Swarm lab (lab/swarm.ts) in cluster mode, its
// primary uplink cut and restored N times. Per switch, from the moment srv2's route switched: the
// service's replicas, restarted by the manager, connected through the new uplink; two containers'
// own connections that nothing restarts redialled — one left alone, one whose old NAT entries are
// flushed at the switch; and how long `docker service update --force` took until ready. Then
// medians, and dockerd's memory per node.
import { join } from "node:path";
import { parseArgs } from "node:util";
import type { SiteStatus } from "#shared";
import { ROOT } from "../lab/agent-process.ts";
import { containerFlow, flushNat, routedVia, type Flow } from "../lab/flows.ts";
import { LabSite, TUNNEL_PORT, settled } from "../lab/site.ts";
import { LabSwarm, swarmTunnel, swarmUnavailable } from "../lab/swarm.ts";
import { EDGE_ADDRESS, publicAddress } from "../lab/topology.ts";
import { memoryMb, percentile } from "./lib/proc.ts";

const { values } = parseArgs({ options: { cuts: { type: "string", default: "5" } } });
const cuts = Number(values.cuts);
const policy = { heartbeatMs: 500, downAfterMs: 1_500, failbackAfterMs: 4_000, minDwellMs: 0 };
const SERVERS = ["srv1", "srv2"];
const SERVICE = "tunnel";
const FLOW_PORT = 7845;

const why = swarmUnavailable();
if (why) {
  console.error(`bench:swarm needs the Swarm lab: ${why}`);
  process.exit(2);
}

interface Switch {
  replicas: number;
  alone: number;
  flushed: number;
  update: number;
}

let site: LabSite | null = null;
let cleaning: Promise<void> | null = null;
// Once, however many times Ctrl-C arrives: a second signal must not cut the cleanup short.
process.on("SIGINT", () => void (cleaning ??= (site?.destroy() ?? Promise.resolve()).then(() => process.exit(130))));

const waitFor = async (ok: () => boolean, what: string) => {
  for (const until = Date.now() + 30_000; !ok(); await new Promise((r) => setTimeout(r, 20)))
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
};

/** One switch: `act` breaks or mends the primary; measures until the replicas and both containers follow. */
async function measure(
  s: LabSite,
  alone: Flow,
  flushed: Flow,
  act: () => Promise<void>,
  from: 1 | 2,
  to: 1 | 2,
): Promise<Switch> {
  const srv2 = s.server("srv2");
  const t = Date.now();
  await act();
  const switchedAt = await routedVia(srv2.ns, `lan${to}`);
  await flushNat(srv2.ns, srv2.address(from), flushed.port);
  const replicas = () => s.tunnelConnects().filter((c) => c.at >= t && c.remote === publicAddress(to));
  await waitFor(
    () => replicas().length >= SERVERS.length && !!alone.via(to, t) && !!flushed.via(to, t),
    `everything through isp${to}`,
  );
  const done: SiteStatus = await s.until(
    (st) => st.activeUplink === `isp${to}` && settled(st, SERVERS),
    `settled on isp${to}`,
    60_000,
    50,
  );
  const log = s.log(done.tunnels.restarter!);
  const at = (msg: string) =>
    Date.parse(log.find((l) => l.msg === msg && l.generation === done.generation)!.time as string);
  return {
    replicas: replicas()[SERVERS.length - 1]!.at - switchedAt,
    alone: alone.via(to, t)!.at - switchedAt,
    flushed: flushed.via(to, t)!.at - switchedAt,
    update: at("tunnels restarted") - at("restarting tunnels"),
  };
}

const sec = (ms: number) => (ms / 1000).toFixed(2).padStart(6);
const line = (x: Switch) => `${sec(x.replicas)} ${sec(x.alone)} ${sec(x.flushed)} ${sec(x.update)}`;

async function main() {
  console.log(
    `bench:swarm — ${cuts} cuts; policy heartbeat ${policy.heartbeatMs} ms, downAfter ${policy.downAfterMs} ms, failbackAfter ${policy.failbackAfterMs} ms`,
  );
  console.log(
    "srv1 the manager, srv2 a worker, one replica each; seconds after srv2's route switch: replicas (restarted) connected, a container left alone redialled, one flushed redialled; update = service update --force until ready\n",
  );
  const dir = join(ROOT, ".state", `bench-swarm-${process.pid}`);
  site = await LabSite.start({
    dir,
    policy,
    tunnels: "cluster",
    servers: SERVERS.map((name) => ({ name, backend: "iproute2", node: process.execPath })),
    serverTunnel: swarmTunnel(dir, SERVICE),
  });
  const s = site;
  const swarm = await LabSwarm.start(s.lab);
  await swarm.createTunnelService(SERVICE, EDGE_ADDRESS, TUNNEL_PORT);
  const alone = await containerFlow(s, swarm.nodes[1]!, FLOW_PORT);
  const flushed = await containerFlow(s, swarm.nodes[1]!, FLOW_PORT + 1);
  await s.until((st) => st.activeUplink === "isp1" && settled(st, SERVERS), "start on isp1", 60_000);
  const downs: Switch[] = [];
  const ups: Switch[] = [];
  console.log(" cut │ failover: replicas  alone flushed update │ failback: replicas  alone flushed update");
  for (let i = 1; i <= cuts; i++) {
    // Let the containers' connections settle on the primary between cuts, as in the field.
    await new Promise((r) => setTimeout(r, 2 * policy.heartbeatMs));
    const d = await measure(s, alone, flushed, () => s.lab.cut(1), 1, 2);
    const u = await measure(s, alone, flushed, () => s.lab.restore(1), 2, 1);
    downs.push(d);
    ups.push(u);
    console.log(`${String(i).padStart(4)} │           ${line(d)} │           ${line(u)}`);
  }
  const med = (xs: Switch[], k: keyof Switch) =>
    percentile(
      xs.map((x) => x[k]),
      50,
    );
  const m = (xs: Switch[]) => ({
    replicas: med(xs, "replicas"),
    alone: med(xs, "alone"),
    flushed: med(xs, "flushed"),
    update: med(xs, "update"),
  });
  console.log(`\nmedian │ failover ${line(m(downs))} │ failback ${line(m(ups))}`);
  for (const n of swarm.nodes)
    console.log(`dockerd on ${n.server.name}: ${memoryMb(n.pid()).rss.toFixed(0)} MB resident`);
  await s.destroy();
}

main().catch(async (err) => {
  console.error(`bench:swarm failed: ${(err as Error).message}`);
  await site?.destroy();
  process.exit(1);
});
