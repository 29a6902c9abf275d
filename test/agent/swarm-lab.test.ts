// The `swarm` tunnel backend against a real Docker Swarm (test/lab/swarm.ts): dockerd on both lab
// servers, srv1 the manager, srv2 a worker, a tunnel service with a replica on each, and the site
// in cluster mode, so the edge elects one server to run `docker service update --force`. Then what
// happens to a container's own long-lived connection after a switch, with and without help.
// Outcomes are asserted; the times are printed as `[lab] …` lines.
import type { ChildProcess } from "node:child_process";
import { dirname, join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { SiteStatus } from "../../shared/src/index.ts";
import { onPath, waitUntil, type Netns } from "../lab/netns.ts";
import { LabSite, TUNNEL_PORT, settled } from "../lab/site.ts";
import { DOCKER, IMAGE, LabSwarm, READY_PORT, dockerDir, swarmUnavailable, type SwarmTask } from "../lab/swarm.ts";
import { EDGE_ADDRESS, publicAddress, routeToEdge } from "../lab/topology.ts";
import { Daemon, NODE20, NODE22, ROOT } from "./support.ts";

const why = swarmUnavailable();
const noConntrack = onPath("conntrack") ? null : "reading and flushing NAT entries needs `conntrack` (apt-get install conntrack)";
const POLICY = { heartbeatMs: 500, downAfterMs: 1_500, failbackAfterMs: 4_000, minDwellMs: 0 };
const SERVERS = ["srv1", "srv2"];
const SERVICE = "tunnel";
/** The port of the endpoint of a container's own connection (and the next one, a host process's). */
const FLOW_PORT = 7845;
/** How long a stalled connection is watched after a switch. */
const STALL_MS = 15_000;
const dir = join(ROOT, ".state", `swarm-lab-${process.pid}`);
let site: LabSite;
let swarm: LabSwarm;

beforeAll(async () => {
  if (why) return;
  site = await LabSite.start({
    dir,
    policy: POLICY,
    tunnels: "cluster",
    servers: SERVERS.map((name) => ({ name, backend: "iproute2", node: NODE20 })),
    serverTunnel: (server) => ({
      config: { restart: "swarm", service: SERVICE, timeoutMs: 30_000, readyUrl: `http://127.0.0.1:${READY_PORT}/ready` },
      env: { DOCKER_HOST: `unix://${join(dockerDir(dir, server), "docker.sock")}`, DOCKER_CONFIG: dockerDir(dir, server), PATH: `${dirname(DOCKER)}:${process.env.PATH}` },
    }),
  });
  const t = Date.now();
  swarm = await LabSwarm.start(site.lab);
  await swarm.createTunnelService(SERVICE, EDGE_ADDRESS, TUNNEL_PORT);
  console.log(`[lab] swarm of ${SERVERS.length} nodes and its tunnel service up in ${Date.now() - t} ms`);
}, 120_000);

afterAll(async () => {
  await site?.destroy();
}, 90_000);

const agentOf = (s: SiteStatus, id: string) => s.agents.find((a) => a.id === id)!;
/** Everyone on `uplink`, every server applied it and the elected one restarted the tunnels. */
const on = (uplink: string) => (s: SiteStatus) => s.activeUplink === uplink && settled(s, SERVERS);
const routes = () => Promise.all(site.lab.servers.map((s) => routeToEdge(s.ns)));
const tunnelsVia = (n: 1 | 2, since: number) => site.tunnelConnects().filter((c) => c.at >= since && c.remote === publicAddress(n));
const ready = (server: string) =>
  site.server(server).ns.exec([NODE22, "-e", `fetch("http://127.0.0.1:${READY_PORT}/ready").then((r) => console.log(r.status), () => console.log(0))`]).then((s) => Number(s.trim()));
const ids = (tasks: SwarmTask[]) => tasks.map((t) => t.id);

/** Waits until a new connection from `ns` to the edge leaves through `dev`; returns when (epoch ms). */
async function routedVia(ns: Netns, dev: string): Promise<number> {
  await waitUntil(async () => (await routeToEdge(ns)) === dev, `routes via ${dev}`, 30_000, 20);
  return Date.now();
}

/** The NAT entries (conntrack) in `ns` of flows to `port` that leave with `address` as their source. */
const natEntries = (ns: Netns, address: string, port: number) => ns.exec(["conntrack", "-L", "-p", "tcp", "--dport", String(port), "--src-nat", address]);

/** A plain container on srv2 (not a service, so nothing restarts it) with its own connection. */
const containerFlow = () => longLived("container", () => swarm.nodes[1]!.docker("run", "-d", "--name", "flow", IMAGE, "/tunnel", EDGE_ADDRESS, String(FLOW_PORT)));

const killOnDestroy = (child: ChildProcess) => () => void child.kill("SIGKILL");

/** One long-lived connection to its own endpoint on "the internet", and where it (re)dials from. */
interface LongLived {
  seen(since: number): { event: string; remote: string; at: number }[];
  via(n: 1 | 2, since: number): { at: number } | undefined;
}
const longLivedOnes = new Map<string, LongLived>();

/** Starts an endpoint on `port` and then the client (once per name), and waits for it through isp1. */
async function longLived(name: string, start: () => Promise<unknown> | void, port = FLOW_PORT): Promise<LongLived> {
  const known = longLivedOnes.get(name);
  if (known) return known;
  const endpoint = new Daemon(site.lab.inet.spawn([NODE22, join(ROOT, "test/fixtures/tunnel-endpoint.mjs"), "--host", EDGE_ADDRESS, "--port", String(port)]));
  site.lab.sets.onDestroy(killOnDestroy(endpoint.child));
  await endpoint.waitFor((l) => l.event === "listening", `the ${name}'s endpoint`);
  const seen = (since: number) => endpoint.lines.filter((l) => l.event !== "listening" && (l.at as number) >= since) as { event: string; remote: string; at: number }[];
  const one: LongLived = { seen, via: (n, since) => seen(since).find((l) => l.event === "connect" && l.remote === publicAddress(n)) };
  await start();
  await waitUntil(() => one.via(1, 0) !== undefined, `the ${name}'s connection through isp1`, 15_000);
  longLivedOnes.set(name, one);
  return one;
}

/** The restart the elected agent made for a generation: from its log, in ms. */
function restartMs(agent: string, generation: number): number {
  const log = site.log(agent);
  const at = (msg: string) => Date.parse(log.find((l) => l.msg === msg && l.generation === generation)!.time as string);
  return at("tunnels restarted") - at("restarting tunnels");
}

/** Waits until every replica was replaced (none of `old` runs) and one runs on each node. */
async function replaced(old: SwarmTask[]): Promise<SwarmTask[]> {
  let now: SwarmTask[] = [];
  await waitUntil(async () => {
    now = await swarm.tasks(SERVICE);
    return now.length === SERVERS.length && now.every((t) => !ids(old).includes(t.id));
  }, "every replica replaced", 30_000, 200);
  return now;
}

describe.skipIf(why)(`tunnels in a real Docker Swarm: the manager restarts every replica after a switch${why ? ` — skipped: ${why}` : ""}`, () => {
  it("the service runs a replica on each node, each connected through the primary and ready", async () => {
    await site.until(on("isp1"), "everyone on isp1");
    expect((await swarm.tasks(SERVICE)).map((t) => t.node).sort()).toEqual(SERVERS);
    await waitUntil(() => tunnelsVia(1, 0).length >= 2, "both replicas connected through isp1", 15_000);
    expect(site.tunnelConnects().every((c) => c.remote === publicAddress(1))).toBe(true);
    for (const s of SERVERS) expect(await ready(s)).toBe(200);
  });

  it("isp1 cut: the manager, elected, restarts both replicas and each reconnects through isp2; on failback, through isp1", async () => {
    const before = await swarm.tasks(SERVICE);
    const cutAt = Date.now();
    await site.lab.cut(1);
    const down = await site.until(on("isp2"), "everyone on isp2, the tunnels restarted", 40_000);
    expect(down.tunnels).toMatchObject({ mode: "cluster", restarter: "srv1", done: true });
    expect(await routes()).toEqual(["lan2", "lan2"]);
    const away = await replaced(before);
    expect(away.map((t) => t.node).sort()).toEqual(SERVERS);
    await waitUntil(() => tunnelsVia(2, cutAt).length >= 2, "both replicas through isp2", 15_000);
    console.log(`[lab] failover: docker service update --force until ready ${restartMs("srv1", down.generation)} ms; cut → both replicas connected through isp2 ${tunnelsVia(2, cutAt)[1]!.at - cutAt} ms`);

    const restoredAt = Date.now();
    await site.lab.restore(1);
    const back = await site.until(on("isp1"), "everyone back on isp1, the tunnels restarted", 40_000);
    expect(back.tunnels).toMatchObject({ restarter: "srv1", done: true });
    expect(await routes()).toEqual(["lan1", "lan1"]);
    const home = await replaced(away);
    expect(home.map((t) => t.node).sort()).toEqual(SERVERS);
    await waitUntil(() => tunnelsVia(1, restoredAt).length >= 2, "both replicas through isp1 again", 15_000);
    console.log(`[lab] failback: docker service update --force until ready ${restartMs("srv1", back.generation)} ms`);
    for (const s of SERVERS) expect(await ready(s)).toBe(200);
  }, 120_000);

  it("a worker elected as the restarter (the manager's agent down) says only a manager can restart the service; once the manager is back, the edge elects it instead", async () => {
    const before = await swarm.tasks(SERVICE);
    await site.stopAgent("srv1");
    await site.until((s) => agentOf(s, "srv1").stale, "srv1 no longer live", 20_000);
    const t0 = Date.now();
    const o = await site.admin("override", "--uplink", "isp2", "--for", "300", "--reason", "worker as restarter");
    const failing = await site.until((s) => s.generation === o.generation && agentOf(s, "srv2").lastError !== null, "srv2 reports its failure", 30_000);
    expect(failing.tunnels).toMatchObject({ restarter: "srv2", done: false });
    expect(agentOf(failing, "srv2").lastError).toMatch(/^this node is a Docker Swarm worker: only a manager can restart service "tunnel" \(enrol a manager node as the tunnel restarter, and this one without --tunnel-restarter\)/);
    const failed = (await site.events()).filter((e) => e.kind === "tunnel-restart-failed" && e.at >= t0);
    expect(failed.map((e) => e.message)).toEqual([expect.stringContaining("srv2 could not restart the tunnels")]);
    expect(ids(await swarm.tasks(SERVICE))).toEqual(ids(before)); // a worker cannot touch the service

    // The manager's agent returns: the edge passes the failed worker over for it, and it restarts.
    site.startAgent("srv1");
    const done = await site.until((s) => s.generation === o.generation && s.tunnels.done, "the manager restarted the tunnels", 40_000);
    expect(done.tunnels.restarter).toBe("srv1");
    await replaced(before);
    await site.admin("override", "--clear");
    const back = await site.until((s) => on("isp1")(s) && agentOf(s, "srv2").lastError === null, "everyone back on isp1, no error left", 40_000);
    expect(back.tunnels.restarter).toBe("srv1");
  }, 150_000);

  it.skipIf(noConntrack)(`a long-lived connection left alone after a switch: a container's (NATed by docker) is reset and redials through the live uplink; a host process's stalls${noConntrack ? ` — skipped: ${noConntrack}` : ""}`, async () => {
    const srv2 = site.server("srv2");
    await site.until(on("isp1"), "everyone on isp1");
    const container = await containerFlow();
    // The lab's stand-in tunnel as a plain process on srv2, with a ready port docker does not hold.
    const host = await longLived("host", () => void site.lab.sets.onDestroy(killOnDestroy(srv2.ns.spawn([NODE22, join(ROOT, "test/fixtures/tunnel-client.mjs"), "--connect", `${EDGE_ADDRESS}:${FLOW_PORT + 1}`, "--ready-port", String(READY_PORT + 1)]))), FLOW_PORT + 1);

    const cutAt = Date.now();
    await site.lab.cut(1);
    const switchedAt = await routedVia(srv2.ns, "lan2");
    // The kernel drops a masqueraded flow's entry (and the packet) when its way out changes: the
    // next packet is NATed afresh through lan2, the endpoint resets what it never saw, the container redials.
    await waitUntil(() => container.via(2, cutAt) !== undefined, "the container redialled through isp2", STALL_MS);
    const redialMs = container.via(2, cutAt)!.at - switchedAt;
    await waitUntil(() => tunnelsVia(2, cutAt).length >= 2, "the restarted replicas through isp2", 30_000);
    const restartMs = tunnelsVia(2, cutAt)[1]!.at - switchedAt;
    // A host process's socket keeps its source address, which policy routing sends out the dead uplink.
    await new Promise((r) => setTimeout(r, switchedAt + STALL_MS - Date.now()));
    expect(host.seen(cutAt)).toEqual([]);
    expect(await natEntries(srv2.ns, srv2.address(1), FLOW_PORT)).toBe("");
    console.log(`[lab] failover, nothing restarted: a container's connection reset and redialled through isp2 ${redialMs} ms after the route switch; a host process's connection still stalled ${STALL_MS / 1000} s after it (no reset); the service's replicas, restarted by the manager, connected ${restartMs} ms after it`);

    const restoredAt = Date.now();
    await site.lab.restore(1);
    const backAt = await routedVia(srv2.ns, "lan1");
    await waitUntil(() => container.via(1, restoredAt) !== undefined, "the container redialled through isp1", STALL_MS);
    console.log(`[lab] failback (isp2 still up), nothing restarted: the container's connection reset and redialled through isp1 ${container.via(1, restoredAt)!.at - backAt} ms after the route switch`);
    await site.until(on("isp1"), "everyone back on isp1", 40_000);
  }, 120_000);

  it.skipIf(noConntrack)(`flushing the old uplink's NAT entries at the switch: the container's next packet is NATed afresh, and it redials${noConntrack ? ` — skipped: ${noConntrack}` : ""}`, async () => {
    const srv2 = site.server("srv2");
    const container = await containerFlow();
    for (const [from, to, what] of [[1, 2, "failover"], [2, 1, "failback"]] as const) {
      const t = Date.now();
      await (what === "failover" ? site.lab.cut(1) : site.lab.restore(1));
      const at = await routedVia(srv2.ns, `lan${to}`);
      // Without this, the first packet after the switch only drops the old entry (and itself): the redial waits one retransmission more.
      const flushed = await srv2.ns.exec(["sh", "-c", `conntrack -D -p tcp --dport ${FLOW_PORT} --src-nat ${srv2.address(from)} 2>&1; true`]);
      await waitUntil(() => container.via(to, t) !== undefined, `the container redialled through isp${to}`, STALL_MS);
      console.log(`[lab] ${what}, the old uplink's NAT entries flushed at the route switch (${/(\d+) flow entries/.exec(flushed)?.[1] ?? "?"} deleted): the container redialled through isp${to} ${container.via(to, t)!.at - at} ms after it`);
      await site.until(on(`isp${to}`), `everyone on isp${to}`, 40_000);
    }
  }, 120_000);
});
