// nmcli backend (the white paper's tool): sets `ipv4.route-metric` on each uplink's connection
// profile so the active one is lowest (persistent: a reboot keeps the last directive's order), and
// the same on the running device with `nmcli device modify`, which changes that one property. A
// reapply of the whole profile, or any change of IPv6 settings, makes NetworkManager restart the
// device's IPv6 and take its SLAAC address away until the next advertisement; IPv6 moves by a
// default route of the agent's own instead (planOwnIpv6).
import type { UplinkConfig } from "../config/schema.ts";
import { describeError } from "../lib/errors.ts";
import type { Logger } from "../lib/log.ts";
import { run } from "./exec.ts";
import { defaultRoutes, ip } from "./ip.ts";
import { planOwnIpv6 } from "./ipv6-routes.ts";
import { desiredMetric } from "./metrics.ts";

export async function applyWithNmcli(
  uplinks: readonly UplinkConfig[],
  activeId: string,
  log: Logger,
  signal: AbortSignal,
): Promise<boolean> {
  const nmcli = (...args: string[]) => run(["nmcli", ...args], { timeoutMs: 10_000, signal });
  const kernel4 = await defaultRoutes("main");
  const routedRight = (dev: string, want: number) => kernel4.find((r) => r.dev === dev)?.metric === want;
  // Active first: lowering its metric never leaves the host without a default route.
  const ordered = [...uplinks].sort((a, b) => Number(b.id === activeId) - Number(a.id === activeId));
  let changed = false;
  for (const u of ordered) {
    const want = desiredMetric(uplinks, u.id, activeId);
    const connection = u.connection!; // the config schema requires it for this backend
    const metrics = ["ipv4.route-metric", String(want)];
    if (routedRight(u.interface, want)) {
      // Already routed right; make sure the profile agrees, so a reboot or reconnect keeps it.
      const profile = Number((await nmcli("-g", "ipv4.route-metric", "connection", "show", connection)).trim());
      if (profile !== want) await nmcli("connection", "modify", connection, ...metrics);
      continue;
    }
    await nmcli("connection", "modify", connection, ...metrics);
    changed = true;
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
  }
  const ipv6 = planOwnIpv6(await defaultRoutes("main", 6), uplinks, activeId);
  for (const argv of ipv6) await ip(...argv);
  return changed || ipv6.length > 0;
}
