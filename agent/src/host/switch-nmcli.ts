// nmcli backend (the white paper's tool): the agent's own default routes, IPv4 and IPv6, lead
// through the active uplink (own-route.ts), and each uplink's connection profile gets the
// `ipv4.route-metric` that puts the active one lowest, so a reboot or a reconnect comes up in the
// directive's order before the agent runs. The running devices are not reapplied: NetworkManager
// would take their IPv6 addresses away for duplicate address detection (see own-route.ts).
import type { UplinkConfig } from "../config/schema.ts";
import { run } from "./exec.ts";
import { defaultRoutes, ip } from "./ip.ts";
import { desiredMetric } from "./metrics.ts";
import { planOwnRoute } from "./own-route.ts";

export async function applyWithNmcli(
  uplinks: readonly UplinkConfig[],
  activeId: string,
  signal: AbortSignal,
): Promise<boolean> {
  const nmcli = (...args: string[]) => run(["nmcli", ...args], { timeoutMs: 10_000, signal });
  // The profiles first: without NetworkManager nothing is half done (the routes stay as they were).
  let profiles = false;
  for (const u of uplinks) {
    const connection = u.connection!; // the config schema requires it for this backend
    const want = String(desiredMetric(uplinks, u.id, activeId));
    if ((await nmcli("-g", "ipv4.route-metric", "connection", "show", connection)).trim() === want) continue;
    await nmcli("connection", "modify", connection, "ipv4.route-metric", want);
    profiles = true;
  }
  const [v4, v6] = await Promise.all([defaultRoutes("main"), defaultRoutes("main", 6)]);
  const plan = [...planOwnRoute(v4, uplinks, activeId, 4), ...planOwnRoute(v6, uplinks, activeId, 6)];
  for (const argv of plan) {
    signal.throwIfAborted();
    await ip(...argv);
  }
  return plan.length > 0 || profiles;
}
