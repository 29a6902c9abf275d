// nmcli backend (the white paper's tool). The kernel's default routes move first, in one `ip
// -batch` (the same routes NetworkManager will hold: its gateways, the uplinks' metrics), so the
// failover does not wait on NetworkManager; then `ipv4.route-metric` goes into each uplink's
// connection profile (persistent: a reboot keeps the last directive's order) and onto the running
// device with `nmcli device modify`, which changes that one property and finds the kernel already
// agreeing (nothing moves, so the drift watch sees nothing). A reapply of the whole profile, or any
// change of IPv6 settings, makes NetworkManager restart the device's IPv6 and take its SLAAC address
// away until the next advertisement; IPv6 moves by a default route of the agent's own instead
// (planOwnIpv6).
import type { UplinkConfig } from "../config/schema.ts";
import type { UplinkRoute } from "../daemon/host-port.ts";
import { describeError } from "../lib/errors.ts";
import type { Logger } from "../lib/log.ts";
import { run } from "./exec.ts";
import { defaultRoutes, ipBatch, type Route } from "./ip.ts";
import { planOwnIpv6 } from "./ipv6-routes.ts";
import { desiredMetric, planDefaultRoutes, type RouteTarget } from "./metrics.ts";

/** Moves the kernel's routes; `persist` then brings NetworkManager's profiles and devices into line. */
export async function routeWithNmcli(
  uplinks: readonly UplinkConfig[],
  learned: Map<string, UplinkRoute>,
  activeId: string,
  log: Logger,
  signal: AbortSignal,
): Promise<{ changed: boolean; persist: () => Promise<void> }> {
  const [kernel4, kernel6] = await Promise.all([defaultRoutes("main"), defaultRoutes("main", 6)]);
  const plan = [...planIpv4(kernel4, uplinks, learned, activeId), ...planOwnIpv6(kernel6, uplinks, activeId)];
  await ipBatch(plan, signal);
  return { changed: plan.length > 0, persist: () => persistMetrics(uplinks, activeId, log, signal) };
}

/** NetworkManager's own default routes given the uplinks' metrics (its gateways, else the ones the agent learned). */
function planIpv4(
  kernel: readonly Route[],
  uplinks: readonly UplinkConfig[],
  learned: Map<string, UplinkRoute>,
  activeId: string,
): string[][] {
  const targets: RouteTarget[] = [];
  for (const u of uplinks) {
    const gateway =
      u.gateway ?? kernel.find((r) => r.dev === u.interface && r.gateway)?.gateway ?? learned.get(u.id)?.gateway;
    // Without one (a device NetworkManager has not brought up): its profile's metric is enough.
    if (gateway)
      targets.push({ uplink: u.id, dev: u.interface, gateway, metric: desiredMetric(uplinks, u.id, activeId) });
  }
  return planDefaultRoutes(kernel, targets);
}

async function persistMetrics(
  uplinks: readonly UplinkConfig[],
  activeId: string,
  log: Logger,
  signal: AbortSignal,
): Promise<void> {
  const nmcli = (...args: string[]) => run(["nmcli", ...args], { timeoutMs: 10_000, signal });
  // The kernel already routes right, so the order of these no longer matters: each round runs
  // for every uplink at once (the tunnels' restart waits for this).
  const stale = (
    await Promise.all(
      uplinks.map(async (u) => {
        const want = desiredMetric(uplinks, u.id, activeId);
        // The config schema requires a connection name for this backend.
        const profile = Number((await nmcli("-g", "ipv4.route-metric", "connection", "show", u.connection!)).trim());
        return profile === want ? [] : [{ u, metrics: ["ipv4.route-metric", String(want)] }];
      }),
    )
  ).flat();
  await Promise.all(stale.map(({ u, metrics }) => nmcli("connection", "modify", u.connection!, ...metrics)));
  await Promise.all(
    stale.map(async ({ u, metrics }) => {
      try {
        await nmcli("device", "modify", u.interface, ...metrics);
      } catch (err) {
        // A dead backup device cannot take it now; its profile has the metric for when it returns.
        if (u.id === activeId) throw err;
        log.warn("cannot change a backup uplink's running device; its profile is updated", {
          uplink: u.id,
          error: describeError(err),
        });
      }
    }),
  );
}
