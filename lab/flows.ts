// Long-lived connections that nothing restarts, to see what a switch does to them: each to its own
// endpoint on "the internet", which records where it (re)dials from. A container's goes through
// docker's NAT on its server; a host process's leaves with the server's own address.
import { join } from "node:path";
import { Daemon, NODE22, ROOT } from "./agent-process.ts";
import { waitUntil, type Netns } from "./netns.ts";
import type { LabSite } from "./site.ts";
import { IMAGE, type DockerNode } from "./swarm.ts";
import { EDGE_ADDRESS, publicAddress, routeToEdge } from "./topology.ts";

interface Seen {
  event: string;
  remote: string;
  at: number;
}

export interface Flow {
  port: number;
  /** What its endpoint saw since `since` (epoch ms): connects and closes. */
  seen(since: number): Seen[];
  /** Its first connection through uplink N since `since`. */
  via(n: 1 | 2, since: number): Seen | undefined;
}

/** Starts the endpoint on `port`, then the client, and waits for it through isp1. */
async function startFlow(
  site: LabSite,
  what: string,
  port: number,
  startClient: () => Promise<unknown>,
): Promise<Flow> {
  const endpoint = new Daemon(
    site.lab.inet.spawn([
      NODE22,
      join(ROOT, "test/fixtures/tunnel-endpoint.mjs"),
      "--host",
      EDGE_ADDRESS,
      "--port",
      String(port),
    ]),
  );
  site.lab.sets.onDestroy(() => void endpoint.child.kill("SIGKILL"));
  await endpoint.waitFor((l) => l.event === "listening", `the endpoint of ${what}`);
  const seen = (since: number) =>
    endpoint.lines.filter((l) => l.event !== "listening" && (l.at as number) >= since) as unknown as Seen[];
  const flow: Flow = {
    port,
    seen,
    via: (n, since) => seen(since).find((l) => l.event === "connect" && l.remote === publicAddress(n)),
  };
  await startClient();
  await waitUntil(() => flow.via(1, 0) !== undefined, `${what} connected through isp1`, 15_000);
  return flow;
}

/** A plain container (no service: nothing restarts it) running the tunnel stand-in to `port`. */
export function containerFlow(site: LabSite, node: DockerNode, port: number): Promise<Flow> {
  return startFlow(site, `a container on ${node.server.name}`, port, () =>
    node.docker("run", "-d", "--name", `flow-${port}`, IMAGE, "/tunnel", EDGE_ADDRESS, String(port)),
  );
}

/** The lab's stand-in tunnel as a plain process on a server, sending every second like the container's; its ready port on `readyPort`. */
export function hostFlow(site: LabSite, server: string, port: number, readyPort: number): Promise<Flow> {
  return startFlow(site, `a process on ${server}`, port, async () => {
    const child = site
      .server(server)
      .ns.spawn([
        NODE22,
        join(ROOT, "test/fixtures/tunnel-client.mjs"),
        "--connect",
        `${EDGE_ADDRESS}:${port}`,
        "--ready-port",
        String(readyPort),
        "--send-every",
        "1000",
      ]);
    site.lab.sets.onDestroy(() => void child.kill("SIGKILL"));
  });
}

/** Waits until a new connection from `ns` to the edge leaves through `dev`; returns when (epoch ms). */
export async function routedVia(ns: Netns, dev: string): Promise<number> {
  await waitUntil(async () => (await routeToEdge(ns)) === dev, `routes via ${dev}`, 30_000, 20);
  return Date.now();
}

/** The NAT entries (conntrack) in `ns` of TCP flows to `port` that leave with `address` as their source. */
export const natEntries = (ns: Netns, address: string, port: number) =>
  ns.exec(["conntrack", "-L", "-p", "tcp", "--dport", String(port), "--src-nat", address]);

/** Deletes those entries; returns how many went. */
export async function flushNat(ns: Netns, address: string, port: number): Promise<number> {
  // conntrack says how many it deleted on stderr, and exits 1 when none matched.
  const said = await ns.exec(["sh", "-c", `conntrack -D -p tcp --dport ${port} --src-nat ${address} 2>&1; true`]);
  return Number(/(\d+) flow entries/.exec(said)?.[1] ?? 0);
}
