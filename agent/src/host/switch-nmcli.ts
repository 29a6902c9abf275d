// nmcli backend (the white paper's tool). The agent's own default routes, IPv4 and IPv6, move first
// through the active uplink (own-route.ts), in one `ip -batch`, so the failover does not wait on
// NetworkManager; then each uplink's connection profile gets the `ipv4.route-metric` that puts the
// active one lowest (persistent: a reboot or a reconnect comes up in the directive's order before
// the agent runs). The running devices are not reapplied, not even with `nmcli device modify`:
// NetworkManager would take their IPv6 addresses away for duplicate address detection (own-route.ts).
import type { UplinkConfig } from "../config/schema.ts";
import { run } from "./exec.ts";
import { defaultRoutes, ipBatch } from "./ip.ts";
import { desiredMetric } from "./metrics.ts";
import { planOwnRoute } from "./own-route.ts";

/** Moves the kernel's routes; `persist` then brings NetworkManager's profiles into line. */
export async function routeWithNmcli(
  uplinks: readonly UplinkConfig[],
  activeId: string,
  signal: AbortSignal,
): Promise<{ changed: boolean; persist: () => Promise<void> }> {
  const [v4, v6] = await Promise.all([defaultRoutes("main"), defaultRoutes("main", 6)]);
  const plan = [...planOwnRoute(v4, uplinks, activeId, 4), ...planOwnRoute(v6, uplinks, activeId, 6)];
  await ipBatch(plan, signal);
  return { changed: plan.length > 0, persist: () => persistMetrics(uplinks, activeId, signal) };
}

async function persistMetrics(uplinks: readonly UplinkConfig[], activeId: string, signal: AbortSignal): Promise<void> {
  const nmcli = (...args: string[]) => run(["nmcli", ...args], { timeoutMs: 10_000, signal });
  // The kernel already routes right, so the order of these no longer matters: every uplink at once.
  await Promise.all(
    uplinks.map(async (u) => {
      const connection = u.connection!; // the config schema requires it for this backend
      const want = String(desiredMetric(uplinks, u.id, activeId));
      if ((await nmcli("-g", "ipv4.route-metric", "connection", "show", connection)).trim() === want) return;
      await nmcli("connection", "modify", connection, "ipv4.route-metric", want);
    }),
  );
}
