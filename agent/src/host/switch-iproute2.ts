// iproute2 backend, for hosts without NetworkManager: rewrites the main table's IPv4 default routes
// so the active uplink's has the lowest metric (a DHCP client that re-adds its own on renewal is
// undone again by the agent's drift repair: it watches the routes). IPv6 default routes come from
// router advertisements and stay the kernel's: the agent moves a default route of its own ahead of
// them (own-route.ts), as on NetworkManager hosts.
import type { UplinkConfig } from "../config/schema.ts";
import type { UplinkRoute } from "../daemon/host-port.ts";
import { defaultRoutes, ipBatch } from "./ip.ts";
import { desiredMetric, planDefaultRoutes, type RouteTarget } from "./metrics.ts";
import { planOwnRoute } from "./own-route.ts";

export async function applyWithIproute2(
  uplinks: readonly UplinkConfig[],
  learned: Map<string, UplinkRoute>,
  activeId: string,
  signal: AbortSignal,
): Promise<boolean> {
  const [v4, v6] = await Promise.all([
    planIpv4(uplinks, learned, activeId),
    defaultRoutes("main", 6).then((current) => planOwnRoute(current, uplinks, activeId, 6)),
  ]);
  // Stopping part-way is safe: each plan adds (or replaces) before it deletes.
  await ipBatch([...v4, ...v6], signal);
  return v4.length + v6.length > 0;
}

async function planIpv4(
  uplinks: readonly UplinkConfig[],
  learned: Map<string, UplinkRoute>,
  activeId: string,
): Promise<string[][]> {
  const current = await defaultRoutes("main");
  const targets: RouteTarget[] = [];
  for (const [i, u] of uplinks.entries()) {
    const gateway =
      u.gateway ?? current.find((r) => r.dev === u.interface && r.gateway)?.gateway ?? learned.get(u.id)?.gateway;
    if (!gateway) {
      if (u.id === activeId)
        throw new Error(`no gateway known for uplink ${u.id} (${u.interface}); set uplinks[${i}].gateway`);
      continue; // a backup without a known gateway keeps whatever it has
    }
    targets.push({ uplink: u.id, dev: u.interface, gateway, metric: desiredMetric(uplinks, u.id, activeId) });
  }
  return planDefaultRoutes(current, targets);
}
