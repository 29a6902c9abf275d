// Real address assignment in the lab: each router serves its LAN by DHCP (dnsmasq), and hosts
// without NetworkManager take their address with a plain DHCP client (busybox's udhcpc) whose hook
// does what such hooks do on every lease, new or renewed: set the address and re-add the default
// route with its own metric — undoing a switch, unless the agent repairs the drift.
import type { ChildProcess } from "node:child_process";
import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { onPath, waitUntil, type Netns } from "./netns.ts";

/**
 * dnsmasq's shortest lease is two minutes; five leave a router that is down for a scenario's
 * minute or two its clients' addresses, and still renew (at half the lease) during a lab run.
 * Tests that need a renewal now ask the client for one.
 */
export const LEASE = "5m";
/** Seconds between a router's unsolicited advertisements, each renewing its prefix's SLAAC addresses. */
export const RA_INTERVAL_S = 10;

export function dhcpUnavailable(): string | null {
  for (const tool of ["dnsmasq", "busybox"])
    if (!onPath(tool)) return `the lab's DHCP needs \`${tool}\` (apt-get install dnsmasq-base busybox)`;
  return null;
}

/** A locally administered MAC per host and LAN, so each gets its reserved address. */
export const macFor = (host: number, lan: 1 | 2) => `02:77:00:00:${host.toString(16).padStart(2, "0")}:0${lan}`;

export interface Reservation {
  mac: string;
  address: string;
}

/**
 * dnsmasq on router N's LAN bridge: DHCP (no DNS), every host at its reserved address, and router
 * advertisements of the router's own IPv6 prefix (SLAAC, every 10 s: hosts see a router soon).
 * `routerLifetimeS` 0: the router says it is no default router (its prefix stays).
 */
export function startDhcpServer(
  router: Netns,
  n: 1 | 2,
  dir: string,
  reservations: Reservation[],
  routerLifetimeS = 1800,
): ChildProcess {
  return router.spawn([
    "dnsmasq",
    "--keep-in-foreground",
    "--port=0",
    "--no-resolv",
    "--no-hosts",
    "--bind-interfaces",
    "--interface=br-lan",
    `--dhcp-range=192.168.${n}.100,192.168.${n}.199,255.255.255.0,${LEASE}`,
    `--dhcp-option=option:router,192.168.${n}.1`,
    "--enable-ra",
    `--dhcp-range=::,constructor:br-lan,ra-only,64,${LEASE}`,
    `--ra-param=br-lan,${RA_INTERVAL_S},${routerLifetimeS}`,
    ...reservations.map((r) => `--dhcp-host=${r.mac},${r.address},${LEASE}`),
    `--dhcp-leasefile=${join(dir, `leases-r${n}`)}`,
    "--dhcp-authoritative",
    // Root keeps its lease file in the lab's folder writable.
    "--user=root",
    `--pid-file=${join(dir, `dnsmasq-r${n}.pid`)}`,
  ]);
}

const HOOK = `#!/bin/sh
# udhcpc's hook, as a plain DHCP client's: on every lease, new or renewed, the address and the
# default route (with this interface's metric) are set again.
case "$1" in
  deconfig) ip -4 addr flush dev "$interface"; ip link set "$interface" up ;;
  bound|renew)
    ip -4 addr replace "$ip/$mask" dev "$interface"
    for r in $router; do ip -4 route replace default via "$r" dev "$interface" metric "$METRIC"; done ;;
esac
`;

export interface DhcpClient {
  child: ChildProcess;
  /** Renews the lease now (udhcpc's SIGUSR1), as it would at half the lease. */
  renew(): void;
}

/** udhcpc on one interface; resolves once it holds `expected`. */
export async function startDhcpClient(
  ns: Netns,
  iface: string,
  metric: number,
  dir: string,
  expected: string,
): Promise<DhcpClient> {
  const hook = join(dir, "udhcpc-hook.sh");
  if (!existsSync(hook)) writeFileSync(hook, HOOK, { mode: 0o755 });
  const child = ns.spawn(["busybox", "udhcpc", "-f", "-i", iface, "-s", hook, "-t", "20", "-T", "1"], {
    env: { ...process.env, METRIC: String(metric) },
  });
  await waitUntil(
    async () => (await ns.ip("-4", "addr", "show", "dev", iface)).includes(`inet ${expected}/`),
    `${iface} in ${ns.name} to get ${expected} by DHCP`,
    20_000,
    100,
  );
  return { child, renew: () => child.kill("SIGUSR1") };
}
