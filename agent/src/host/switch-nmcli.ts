// nmcli backend (the white paper's tool): sets `ipv4.route-metric` and `ipv6.route-metric` on each uplink's connection
// profile so the active one is lowest, then `nmcli device reapply` so the running device takes it
// without a reconnect. The profile is persistent: a reboot keeps the last directive's order.
import type { UplinkConfig } from "../config/schema.ts";
import { describeError } from "../lib/errors.ts";
import type { Logger } from "../lib/log.ts";
import { run } from "./exec.ts";
import { defaultRoutes, ip } from "./ip.ts";
import { planIpv6 } from "./ipv6-routes.ts";
import { desiredMetric } from "./metrics.ts";

export async function applyWithNmcli(
  uplinks: readonly UplinkConfig[],
  activeId: string,
  log: Logger,
  signal: AbortSignal,
): Promise<boolean> {
  const nmcli = (...args: string[]) => run(["nmcli", ...args], { timeoutMs: 10_000, signal });
  const [kernel4, kernel6] = await Promise.all([defaultRoutes("main"), defaultRoutes("main", 6)]);
  // Right when each family's default route on the interface (if it has one) already has the metric.
  const routedRight = (dev: string, want: number) =>
    kernel4.find((r) => r.dev === dev)?.metric === want &&
    [kernel6.find((r) => r.dev === dev)].every((r) => r === undefined || r.metric === want);
  // Active first: lowering its metric never leaves the host without a default route.
  const ordered = [...uplinks].sort((a, b) => Number(b.id === activeId) - Number(a.id === activeId));
  let changed = false;
  for (const u of ordered) {
    const want = desiredMetric(uplinks, u.id, activeId);
    const connection = u.connection!; // the config schema requires it for this backend
    // One metric for both families: IPv6 leaves through the same uplink as IPv4.
    const metrics = ["ipv4.route-metric", String(want), "ipv6.route-metric", String(want)];
    if (routedRight(u.interface, want)) {
      // Already routed right; make sure the profile agrees, so a reboot or reconnect keeps it.
      const profile = (await nmcli("-g", "ipv4.route-metric,ipv6.route-metric", "connection", "show", connection))
        .trim()
        .split("\n")
        .map(Number);
      if (profile.some((m) => m !== want)) await nmcli("connection", "modify", connection, ...metrics);
      continue;
    }
    await nmcli("connection", "modify", connection, ...metrics);
    changed = true;
    try {
      await nmcli("device", "reapply", u.interface);
    } catch (err) {
      // A dead backup device cannot take it now; its profile has the metric for when it returns.
      if (u.id === activeId) throw err;
      log.warn("cannot reapply a backup uplink's connection; its profile is updated", {
        uplink: u.id,
        error: describeError(err),
      });
    }
  }
  // A reapply drops the device's advertised IPv6 route until the router's next advertisement
  // (seconds): put each back now, with its new metric; NetworkManager renews it when one comes.
  if (changed)
    for (const argv of await planIpv6(uplinks, activeId, kernel6))
      await ip(...argv).catch((err) =>
        log.warn("cannot put an IPv6 default route back after the reapply", { error: describeError(err) }),
      );
  return changed;
}
