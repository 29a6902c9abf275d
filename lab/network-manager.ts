// NetworkManager inside one namespace, on a private D-Bus "system" bus, so the nmcli backend is
// tested for real without touching the host. Traps (see the team's lab notes): NM waits forever
// for udev unless /sys is read-only in its mount namespace; keep /run/NetworkManager on a bind
// mount; wait for RUNNING.
import type { ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { alive, onPath, waitUntil, type Netns } from "./netns.ts";

export interface NetworkManagerInNs {
  env: Record<string, string>;
  nmcli(...args: string[]): Promise<string>;
  stop(): Promise<void>;
  /** Its log, for a failing test's message. */
  log(): string;
}

export function networkManagerUnavailable(): string | null {
  for (const tool of ["NetworkManager", "nmcli", "dbus-daemon"])
    if (!onPath(tool)) return `the nmcli tests need \`${tool}\` (apt-get install network-manager)`;
  return null;
}

/** `extraConfig`: more of NetworkManager.conf (e.g. a [connectivity] section), read at start as a conf.d file would be. */
export async function startNetworkManager(ns: Netns, dir: string, extraConfig = ""): Promise<NetworkManagerInNs> {
  for (const d of ["system-connections", "conf.d", "run", "lib"]) mkdirSync(join(dir, d), { recursive: true });
  if (extraConfig) writeFileSync(join(dir, "conf.d", "90-extra.conf"), extraConfig);
  const sock = join(dir, "dbus.sock");
  rmSync(sock, { force: true });
  writeFileSync(
    join(dir, "dbus.conf"),
    `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN" "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig><type>system</type><listen>unix:path=${sock}</listen><auth>EXTERNAL</auth>
<policy context="default"><allow user="*"/><allow own="*"/><allow send_destination="*" eavesdrop="true"/><allow eavesdrop="true"/></policy></busconfig>
`,
  );
  writeFileSync(
    join(dir, "NetworkManager.conf"),
    `[main]
plugins=keyfile
dns=none
rc-manager=unmanaged
systemd-resolved=false
hostname-mode=none
no-auto-default=*
auth-polkit=false
[keyfile]
path=${join(dir, "system-connections")}
[logging]
level=INFO
`,
  );
  const env = { DBUS_SYSTEM_BUS_ADDRESS: `unix:path=${sock}` };
  const logFile = join(dir, "nm.log");
  const procs: ChildProcess[] = [];
  const stop = async () => {
    for (const p of procs.splice(0).reverse()) {
      if (p.pid === undefined) continue;
      p.kill("SIGTERM");
      await waitUntil(() => !alive(p.pid!), "NetworkManager to stop", 5_000).catch(() => p.kill("SIGKILL"));
    }
  };
  try {
    const dbus = ns.spawn(
      ["setsid", "dbus-daemon", `--config-file=${join(dir, "dbus.conf")}`, "--nofork", "--nopidfile"],
      { stdio: "ignore" },
    );
    procs.push(dbus);
    await waitUntil(() => existsSync(sock), "the private D-Bus socket", 10_000, 20);
    const script = [
      "mount -t tmpfs wanwatch-nm-run /run && mkdir -p /run/NetworkManager",
      `mount --bind '${join(dir, "run")}' /run/NetworkManager`,
      `mount --bind '${join(dir, "lib")}' /var/lib/NetworkManager`,
      "mount -o remount,bind,ro /sys",
      `exec NetworkManager --no-daemon --log-level=INFO --config='${join(dir, "NetworkManager.conf")}' --config-dir='${join(dir, "conf.d")}' --state-file='${join(dir, "NetworkManager.state")}' >>'${logFile}' 2>&1`,
    ].join(" && ");
    const nm = ns.spawn(["setsid", "sh", "-c", script], { stdio: "ignore", env: { ...process.env, ...env } });
    procs.push(nm);
    const nmcli = (...args: string[]) => ns.exec(["nmcli", ...args], { env: { ...process.env, ...env } });
    await waitUntil(
      async () => {
        if (!alive(nm.pid!)) throw new Error(`NetworkManager exited: ${tail(logFile)}`);
        return (await nmcli("-t", "-f", "RUNNING", "general").catch(() => "")).trim() === "running";
      },
      "NetworkManager on D-Bus",
      30_000,
    );
    return { env, nmcli, stop, log: () => tail(logFile) };
  } catch (err) {
    await stop();
    throw err;
  }
}

function tail(file: string): string {
  try {
    return readFileSync(file, "utf8").split("\n").slice(-15).join("\n");
  } catch {
    return "(no log)";
  }
}

/** How a LAN profile gets its addresses: static IPv4 (IPv6 off), or DHCP and router advertisements. */
export type LanAddressing = { address: string; gateway: string } | "auto";

/**
 * A keyfile profile for one LAN, as on a real server (the interface named by `ifname` only; the
 * route metric stored for both families), brought up.
 */
export async function addLanProfile(
  nm: NetworkManagerInNs,
  o: { ifname: string; name: string; routeMetric: number; addressing: LanAddressing },
): Promise<void> {
  const metric = String(o.routeMetric);
  const addressing =
    o.addressing === "auto"
      ? ["ipv4.method", "auto", "ipv4.route-metric", metric, "ipv6.method", "auto", "ipv6.route-metric", metric]
      : [
          ...["ipv4.method", "manual", "ipv4.addresses", o.addressing.address, "ipv4.gateway", o.addressing.gateway],
          ...["ipv4.route-metric", metric, "ipv6.method", "disabled"],
        ];
  await nm.nmcli(
    "connection",
    "add",
    "type",
    "ethernet",
    "ifname",
    o.ifname,
    "con-name",
    o.name,
    "autoconnect",
    "yes",
    ...addressing,
  );
  await nm.nmcli("connection", "up", o.name);
}
