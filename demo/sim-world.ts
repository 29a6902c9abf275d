// The demo where the lab cannot run (not root, not Linux): the edge is real (workerd, locally);
// the uplinks, probes and servers are simulated in this process with the `none` switch backend.
import { join } from "node:path";
import type { SiteEvent, SiteStatus } from "#shared";
import { startLocalEdge } from "../tools/local-edge.ts";
import { SimAgent, type World } from "./sim-agent.ts";
import type { DemoPolicy, DemoWorld } from "./world.ts";

const SITE = "demo";

/** `publicStatus: false` puts the status pages behind the login (the viewer token is returned). */
export async function startSimWorld(
  root: string,
  policy: DemoPolicy,
  port: number,
  o: { publicStatus?: boolean; stateDir?: string } = {},
): Promise<DemoWorld & { viewerToken: string; adminToken: string }> {
  const edge = await startLocalEdge({
    stateDir: o.stateDir ?? join(root, ".state", "demo"),
    publicStatus: o.publicStatus ?? true,
    port,
  });
  const api = edge.api;
  try {
    await api("PUT", `/v1/sites/${SITE}`, {
      uplinks: [
        { id: "isp1", priority: 1, name: "Fiber" },
        { id: "isp2", priority: 2, name: "LTE", metered: true },
      ],
      policy,
      tunnels: { restart: "cluster" },
    });
    const world: World = { up: { isp1: true, isp2: true }, publicIp: { isp1: "203.0.113.1", isp2: "203.0.113.2" } };
    const news: string[] = [];
    const hooks = {
      onApply: (a: SimAgent, d: { generation: number; activeUplink: string }) =>
        news.push(`${a.id}: default route → ${d.activeUplink} (simulated)`),
      onRestart: (a: SimAgent, d: { activeUplink: string }) =>
        news.push(`${a.id}: tunnel restarted, reconnecting through ${d.activeUplink} (simulated)`),
    };
    const agents: SimAgent[] = [];
    for (const [id, role, uplink] of [
      ["sbc1", "probe", "isp1"],
      ["sbc2", "probe", "isp2"],
      ["srv1", "server", undefined],
      ["srv2", "server", undefined],
    ] as const) {
      const { secret } = await api("POST", `/v1/sites/${SITE}/agents`, {
        id,
        role,
        uplink,
        tunnelRestarter: role === "server" || undefined,
      });
      agents.push(await SimAgent.create(edge.url, SITE, id, uplink ? [uplink] : ["isp1", "isp2"], secret, hooks));
    }
    // The simulated hosts heartbeat on their own, like the real agents.
    let beating: Promise<unknown> = Promise.resolve();
    const timer = setInterval(() => {
      beating = beating.then(() =>
        Promise.all(agents.map((a) => a.beat(world))).catch((err) =>
          news.push(`heartbeat failed: ${(err as Error).message}`),
        ),
      );
    }, policy.heartbeatMs);
    return {
      viewerToken: edge.viewerToken,
      adminToken: edge.adminToken,
      banner:
        "SIMULATION MODE (the lab needs root on Linux with iproute2 and nftables): the edge is real (workerd, locally);\nthe two uplinks, the probes and the servers are simulated in this process (switch backend: none).",
      edgeUrl: edge.url,
      site: SITE,
      servers: ["srv1", "srv2"],
      status: async () => (await api("GET", `/v1/sites/${SITE}/status`)) as SiteStatus,
      events: async () => ((await api("GET", `/v1/sites/${SITE}/events?limit=200`)) as SiteEvent[]).reverse(),
      cut: async () => void (world.up.isp1 = false),
      restore: async () => void (world.up.isp1 = true),
      news: () => news.splice(0),
      async stop() {
        clearInterval(timer);
        await beating;
        await edge.stop();
      },
    };
  } catch (err) {
    await edge.stop();
    throw err;
  }
}
