// The demo on real test hosts (root on Linux): the lab site of the end-to-end tests, narrated from
// the agents' own logs and the tunnel endpoint's record of where each tunnel comes from.
import { join } from "node:path";
import { networkManagerUnavailable } from "../lab/network-manager.ts";
import { DEFAULT_SERVERS, LabSite, SITE } from "../lab/site.ts";
import { publicAddress } from "../lab/topology.ts";
import type { DemoPolicy, DemoWorld } from "./world.ts";

export async function startLabWorld(root: string, policy: DemoPolicy, port: number): Promise<DemoWorld> {
  // Without NetworkManager both servers use iproute2.
  const nm = networkManagerUnavailable();
  const servers = nm ? DEFAULT_SERVERS.map((s) => ({ ...s, backend: "iproute2" as const })) : DEFAULT_SERVERS;
  const site = await LabSite.start({ dir: join(root, ".state", "demo-lab"), policy, servers, hostPort: port });
  const read = new Map<string, number>();
  const fresh = (key: string, lines: Record<string, any>[]) => {
    const from = read.get(key) ?? 0;
    read.set(key, lines.length);
    return lines.slice(from);
  };
  const uplinkOf = (addr: string) => (addr === publicAddress(1) ? "isp1" : addr === publicAddress(2) ? "isp2" : "?");
  return {
    banner:
      "LAB MODE: real hosts in network namespaces — two routers with NAT, a probe SBC behind each, two servers on both LANs\n" +
      `(${servers.map((s) => `${s.name}: ${s.backend}`).join(", ")}${nm ? `; ${nm}` : ""}), every agent the built dist/wanwatch.mjs; the edge is real (workerd).`,
    edgeUrl: site.hostUrl,
    site: SITE,
    servers: servers.map((s) => s.name),
    status: () => site.status(),
    events: () => site.events(),
    cut: () => site.lab.cut(1),
    restore: () => site.lab.restore(1),
    news() {
      const out: string[] = [];
      for (const s of servers) {
        for (const l of fresh(s.name, site.log(s.name))) {
          if (l.msg === "routes switched")
            out.push(`${s.name}: default route → ${l.activeUplink} (${s.backend}, verified with ip route get)`);
          else if (l.msg === "restarting tunnels") out.push(`${s.name}: restarting its tunnel`);
          else if (l.level === "error" || (l.level === "warn" && !String(l.msg).startsWith("HTTP heartbeat failed")))
            out.push(`${s.name}${l.uplink ? ` (${l.uplink})` : ""}: ${l.msg}`);
        }
      }
      for (const c of fresh("endpoint", site.endpoint.lines).filter((l) => l.event === "connect"))
        out.push(`tunnel endpoint: a tunnel connected from ${c.remote} (${uplinkOf(c.remote)}'s public address)`);
      return out;
    },
    stop: () => site.destroy(),
  };
}
