// iproute2 backend: rewrites the main table's default routes so the active uplink's has the
// lowest metric. For hosts without NetworkManager; a DHCP client that re-adds its own default
// route on renewal is undone again by the agent's drift repair (it watches the routes).
import type { UplinkConfig } from "../config/schema.ts";
import type { UplinkRoute } from "../daemon/host-port.ts";
import { defaultRoutes, ip } from "./ip.ts";
import { desiredMetric, planDefaultRoutes, type RouteTarget } from "./metrics.ts";

export async function applyWithIproute2(uplinks: readonly UplinkConfig[], learned: Map<string, UplinkRoute>, activeId: string, signal: AbortSignal): Promise<boolean> {
  const current = await defaultRoutes("main");
  const targets: RouteTarget[] = [];
  for (const [i, u] of uplinks.entries()) {
    const gateway = u.gateway ?? current.find((r) => r.dev === u.interface && r.gateway)?.gateway ?? learned.get(u.id)?.gateway;
    if (!gateway) {
      if (u.id === activeId) throw new Error(`no gateway known for uplink ${u.id} (${u.interface}); set uplinks[${i}].gateway`);
      continue; // a backup without a known gateway keeps whatever it has
    }
    targets.push({ uplink: u.id, dev: u.interface, gateway, metric: desiredMetric(uplinks, u.id, activeId) });
  }
  const plan = planDefaultRoutes(current, targets);
  // Stopping between steps is safe: the plan adds before it deletes.
  for (const argv of plan) {
    signal.throwIfAborted();
    await ip(...argv);
  }
  return plan.length > 0;
}
