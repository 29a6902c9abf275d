// The route switcher the directive applier drives: picks the backend, then checks that new
// connections to the edge really leave through the active uplink before the switch is reported.
import type { AgentConfig } from "../config/schema.ts";
import type { UplinkRoute } from "../daemon/host-port.ts";
import type { Switcher } from "../directive/applier.ts";
import { defaultRoutes, routeGet } from "./ip.ts";
import { ownRouteOff } from "./own-route.ts";
import { applyWithIproute2 } from "./switch-iproute2.ts";
import { routeWithNmcli } from "./switch-nmcli.ts";

const VERIFY_WITHIN_MS = 3_000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export function createSwitcher(config: AgentConfig, learned: Map<string, UplinkRoute>): Switcher {
  const { uplinks } = config;
  const backend = config.switch.backend;
  return {
    async routed() {
      const [v4, v6] = await Promise.all([defaultRoutes("main"), defaultRoutes("main", 6)]);
      const uplinkOn = (dev: string | undefined) => uplinks.find((u) => u.interface === dev)?.id ?? null;
      return {
        ipv4: uplinkOn(v4[0]?.dev),
        // Through no uplink while the agent's own route is off (missing, on a router left behind or no
        // longer a default router): where the active uplink has IPv6, that is drift, and a re-apply moves it.
        ipv6: ownRouteOff(v6) ? null : uplinkOn(v6[0]?.dev),
        withIpv6: uplinks.filter((u) => v6.some((r) => r.dev === u.interface)).map((u) => u.id),
      };
    },
    async apply(activeId, edgeAddress, signal) {
      const u = uplinks.find((x) => x.id === activeId);
      if (!u) throw new Error(`the directive names uplink "${activeId}", which this host's config does not have`);
      if (backend === "none") return { changed: false }; // report only
      if (backend === "nmcli") {
        const r = await routeWithNmcli(uplinks, activeId, signal);
        await verifyRoute(edgeAddress, u.interface, activeId, signal);
        return r;
      }
      const changed = await applyWithIproute2(uplinks, learned, activeId, signal);
      await verifyRoute(edgeAddress, u.interface, activeId, signal);
      return { changed };
    },
  };
}

/** The kernel has the routes at once; poll briefly all the same, in case something on the host is still moving them. */
async function verifyRoute(edge: string, dev: string, uplink: string, signal: AbortSignal): Promise<void> {
  const until = Date.now() + VERIFY_WITHIN_MS;
  for (;;) {
    signal.throwIfAborted();
    const r = await routeGet(edge);
    if (r.dev === dev) return;
    if (Date.now() >= until)
      throw new Error(
        `the route to the edge (${edge}) leaves through ${r.dev ?? "nowhere"}, not ${dev} (uplink ${uplink})`,
      );
    await sleep(100);
  }
}
