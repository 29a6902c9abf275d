// INTERIM binding until agent/src/host lands: switch backend "none" and tunnels "none" only, and
// no policy routing (each uplink binds its interface's IPv4 address). Replace with the host module.
import { networkInterfaces } from "node:os";
import type { HostPort, UplinkRoute } from "./host-port.ts";

export const realHostPort: HostPort = {
  createSwitcher(config) {
    if (config.switch.backend !== "none") throw new Error(`switch backend ${config.switch.backend} is not available in this build`);
    return { routedUplink: async () => null, apply: async () => ({ changed: false }) };
  },
  installUplinkRouting(uplinks) {
    const m = new Map<string, UplinkRoute>();
    for (const u of uplinks) {
      const addr = networkInterfaces()[u.interface]?.find((a) => a.family === "IPv4")?.address;
      if (!addr) throw new Error(`uplinks: interface ${u.interface} (${u.id}) has no IPv4 address`);
      m.set(u.id, { sourceAddress: addr, interface: u.interface });
    }
    return m;
  },
  removeUplinkRouting() {},
  createTunnelRestarter(tunnels) {
    if (tunnels.restart !== "none") throw new Error(`tunnels.restart ${tunnels.restart} is not available in this build`);
    return { restart: async () => undefined };
  },
};
