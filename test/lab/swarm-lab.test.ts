// The `swarm` tunnel backend against a real Docker Swarm (lab/swarm.ts): dockerd on both lab
// servers, srv1 the manager, srv2 a worker, a tunnel service with a replica on each, and the site
// in cluster mode, so the edge elects one server to run `docker service update --force`. Then what
// happens to a container's own long-lived connection after a switch, with and without help.
// Outcomes are asserted; the times are printed as `[lab] …` lines.
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { SiteStatus } from "#shared";
import { containerFlow, flushNat, hostFlow, natEntries, routedVia } from "../../lab/flows.ts";
import { onPath, waitUntil } from "../../lab/netns.ts";
import { LabSite, TUNNEL_PORT, settled } from "../../lab/site.ts";
import { LabSwarm, READY_PORT, swarmTunnel, swarmUnavailable, type SwarmTask } from "../../lab/swarm.ts";
import { EDGE_ADDRESS, publicAddress, routeToEdge } from "../../lab/topology.ts";
import { NODE20, NODE22, ROOT } from "../../lab/agent-process.ts";

const why = swarmUnavailable();
const noConntrack = onPath("conntrack")
  ? null
  : "reading and flushing NAT entries needs `conntrack` (apt-get install conntrack)";
const POLICY = { heartbeatMs: 500, downAfterMs: 1_500, failbackAfterMs: 4_000, minDwellMs: 0 };
const SERVERS = ["srv1", "srv2"];
const SERVICE = "tunnel";
/** The first port of the endpoints of long-lived connections nothing restarts (lab/flows.ts). */
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
    serverTunnel: swarmTunnel(dir, SERVICE),
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
const tunnelsVia = (n: 1 | 2, since: number) =>
  site.tunnelConnects().filter((c) => c.at >= since && c.remote === publicAddress(n));
const ready = (server: string) =>
  site
    .server(server)
    .ns.exec([
      NODE22,
      "-e",
      `fetch("http://127.0.0.1:${READY_PORT}/ready").then((r) => console.log(r.status), () => console.log(0))`,
    ])
    .then((s) => Number(s.trim()));
const ids = (tasks: SwarmTask[]) => tasks.map((t) => t.id);

/** The restart the elected agent made for a generation: from its log, in ms. */
function restartMs(agent: string, generation: number): number {
  const log = site.log(agent);
  const at = (msg: string) => Date.parse(log.find((l) => l.msg === msg && l.generation === generation)!.time as string);
  return at("tunnels restarted") - at("restarting tunnels");
}

/** Waits until every replica was replaced (none of `old` runs) and one runs on each node. */
async function replaced(old: SwarmTask[]): Promise<SwarmTask[]> {
  let now: SwarmTask[] = [];
  await waitUntil(
    async () => {
      now = await swarm.tasks(SERVICE);
      return now.length === SERVERS.length && now.every((t) => !ids(old).includes(t.id));
    },
    "every replica replaced",
    30_000,
    200,
  );
  return now;
}

describe.skipIf(why)(
  `tunnels in a real Docker Swarm: the manager restarts every replica after a switch${why ? ` — skipped: ${why}` : ""}`,
  () => {
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
      console.log(
        `[lab] failover: docker service update --force until ready ${restartMs("srv1", down.generation)} ms; cut → both replicas connected through isp2 ${tunnelsVia(2, cutAt)[1]!.at - cutAt} ms`,
      );

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
      const failing = await site.until(
        (s) => s.generation === o.generation && agentOf(s, "srv2").lastError !== null,
        "srv2 reports its failure",
        30_000,
      );
      expect(failing.tunnels).toMatchObject({ restarter: "srv2", done: false });
      expect(agentOf(failing, "srv2").lastError).toMatch(
        /^this node is a Docker Swarm worker: only a manager can restart service "tunnel" \(enrol a manager node as the tunnel restarter, and this one without --tunnel-restarter\)/,
      );
      const failed = (await site.events()).filter((e) => e.kind === "tunnel-restart-failed" && e.at >= t0);
      expect(failed.map((e) => e.message)).toEqual([expect.stringContaining("srv2 could not restart the tunnels")]);
      expect(ids(await swarm.tasks(SERVICE))).toEqual(ids(before)); // a worker cannot touch the service

      // The manager's agent returns: the edge passes the failed worker over for it, and it restarts.
      site.startAgent("srv1");
      const done = await site.until(
        (s) => s.generation === o.generation && s.tunnels.done,
        "the manager restarted the tunnels",
        40_000,
      );
      expect(done.tunnels.restarter).toBe("srv1");
      await replaced(before);
      await site.admin("override", "--clear");
      const back = await site.until(
        (s) => on("isp1")(s) && agentOf(s, "srv2").lastError === null,
        "everyone back on isp1, no error left",
        40_000,
      );
      expect(back.tunnels.restarter).toBe("srv1");
    }, 150_000);

    it.skipIf(noConntrack)(
      `a long-lived connection left alone after a switch: a container's (NATed by docker) is reset and redials through the live uplink, a host process's stalls; flushing the old uplink's NAT entries at the switch${noConntrack ? ` — skipped: ${noConntrack}` : ""}`,
      async () => {
        const srv2 = site.server("srv2");
        await site.until(on("isp1"), "everyone on isp1");
        // Two containers on srv2, whose NAT entries the test flushes for one only, and a host process.
        const [alone, flushed, host] = [
          await containerFlow(site, swarm.nodes[1]!, FLOW_PORT),
          await containerFlow(site, swarm.nodes[1]!, FLOW_PORT + 1),
          await hostFlow(site, "srv2", FLOW_PORT + 2, READY_PORT + 1),
        ];

        for (const [from, to, what] of [
          [1, 2, "failover"],
          [2, 1, "failback (isp2 still up)"],
        ] as const) {
          const t = Date.now();
          await (to === 2 ? site.lab.cut(1) : site.lab.restore(1));
          const switchedAt = await routedVia(srv2.ns, `lan${to}`);
          const deleted = await flushNat(srv2.ns, srv2.address(from), flushed.port);
          // The kernel drops a masqueraded flow's entry (and the packet) once its way out changes: the
          // next packet is NATed afresh through the live uplink, the endpoint resets what it never
          // saw, and the container redials. The flush spares that first dropped packet.
          for (const f of [alone, flushed])
            await waitUntil(() => f.via(to, t) !== undefined, `a container redialled through isp${to}`, STALL_MS);
          expect(await natEntries(srv2.ns, srv2.address(from), alone.port)).toBe("");
          await waitUntil(() => tunnelsVia(to, t).length >= 2, `the restarted replicas through isp${to}`, 30_000);
          const after = (at: number) => `${at - switchedAt} ms`;
          console.log(
            `[lab] ${what}, after the route switch: a container's connection left alone reset and redialled through isp${to} in ${after(alone.via(to, t)!.at)}; with its old NAT entries flushed at the switch (${deleted} deleted), in ${after(flushed.via(to, t)!.at)}; the service's replicas, restarted, connected in ${after(tunnelsVia(to, t)[1]!.at)}`,
          );
          if (to === 2) {
            // A host process's socket keeps its old source address, which no router answers any more.
            await new Promise((r) => setTimeout(r, switchedAt + STALL_MS - Date.now()));
            expect(host.seen(t)).toEqual([]);
            console.log(
              `[lab] failover: a host process's connection, not restarted, still stalled ${STALL_MS / 1000} s after the switch (no reset, no reconnect)`,
            );
          }
          await site.until(on(`isp${to}`), `everyone on isp${to}`, 40_000);
        }
      },
      150_000,
    );
  },
);
