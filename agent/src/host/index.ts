// The real host: policy routing, route switching and tunnel restarts with the system's own tools.
import type { HostPort } from "../daemon/host-port.ts";
import { tableFor } from "./policy-rules.ts";
import { gatewayOf, installUplinkRouting, removeUplinkRouting } from "./policy-routing.ts";
import { routeIpv6, unrouteIpv6, uplinkIpv6 } from "./policy-routing6.ts";
import { watchRoutes } from "./route-watch.ts";
import { createSwitcher } from "./switcher.ts";
import { createTunnelRestarter } from "./tunnels.ts";

export const systemHost: HostPort = {
  createSwitcher,
  installUplinkRouting,
  removeUplinkRouting,
  createTunnelRestarter,
  watchRoutes,
  uplinkIpv6,
  routeIpv6,
  unrouteIpv6,
  uplinkGateway: (u, i) => gatewayOf(u, tableFor(i)),
};
