// Peer (a) of bench:peers: keepalived's VRRP between the lab's two routers. A virtual gateway only
// makes sense on a segment both routers are on, so the lab gets one more: a bridge "lan0" that both
// routers and one server join (the server's only link, its default route the virtual address).
// Each router runs keepalived with a track_script that pings the edge through its own WAN.
import type { ChildProcess } from "node:child_process";
import { createWriteStream, writeFileSync } from "node:fs";
import { join } from "node:path";
import { onPath, waitUntil, type Netns } from "../../lab/netns.ts";
import { EDGE_ADDRESS, type Lab } from "../../lab/topology.ts";

/** The virtual gateway the server uses; the routers are .2 and .3, the server .21. */
export const VIRTUAL_GATEWAY = "192.168.0.1";

export function keepalivedUnavailable(): string | null {
  for (const [tool, pkg] of [
    ["keepalived", "keepalived"],
    ["ping", "iputils-ping"],
  ])
    if (!onPath(tool)) return `peer (a) needs \`${tool}\` (apt-get install ${pkg})`;
  return null;
}

/**
 * keepalived.conf for router n, as keepalived's docs lay it out: one VRRP instance on lan0 with
 * `advert_int 1`, r1 preferred (priority 110 against 100, preempting), and a `vrrp_script` run
 * every second. Its default weight (0) puts a router whose check fails into FAULT: it gives the
 * address up at once with a priority-0 advert. (A negative weight only lowers its priority, and
 * the backup, which ignores lower-priority adverts, then waits out Master_Down_Interval, ≈ 3.6 s.)
 */
export function keepalivedConf(n: 1 | 2, fall: number, rise: number): string {
  return `global_defs {
  router_id r${n}
  script_user root
  enable_script_security
}
vrrp_script wan_up {
  script "/usr/bin/ping -c 1 -W 1 ${EDGE_ADDRESS}"
  interval 1
  fall ${fall}
  rise ${rise}
}
vrrp_instance gateway {
  state BACKUP
  interface lan0
  virtual_router_id 51
  priority ${n === 1 ? 110 : 100}
  advert_int 1
  virtual_ipaddress {
    ${VIRTUAL_GATEWAY}/24 dev lan0
  }
  track_script {
    wan_up
  }
}
`;
}

/** Adds lan0 to `lab` and returns the server on it, its traffic through the virtual gateway. */
export async function sharedSegment(lab: Lab): Promise<Netns> {
  const sw = await lab.sets.add("lan0");
  await sw.ip("link", "add", "lan0", "type", "bridge");
  await sw.ip("link", "set", "lan0", "up");
  for (const n of [1, 2] as const) {
    const r = lab.routers[n - 1];
    await r.ip("link", "add", "lan0", "type", "veth", "peer", "name", `r${n}`, "netns", sw.name);
    await sw.ip("link", "set", `r${n}`, "master", "lan0", "up");
    await r.ip("addr", "add", `192.168.0.${n + 1}/24`, "dev", "lan0");
    await r.ip("link", "set", "lan0", "up");
  }
  const server = await lab.sets.add("srv0");
  await server.ip("link", "add", "eth0", "type", "veth", "peer", "name", "s", "netns", sw.name);
  await sw.ip("link", "set", "s", "master", "lan0", "up");
  await server.ip("addr", "add", "192.168.0.21/24", "dev", "eth0");
  await server.ip("link", "set", "eth0", "up");
  await server.ip("route", "add", "default", "via", VIRTUAL_GATEWAY);
  return server;
}

/** Starts keepalived (VRRP only) in both routers, each with its own config and pid files; waits for r1 to hold the address. */
export async function startKeepalived(lab: Lab, fall: number, rise: number): Promise<void> {
  const procs: ChildProcess[] = [];
  lab.sets.onDestroy(() => {
    for (const p of procs) p.kill("SIGTERM");
  });
  for (const n of [1, 2] as const) {
    const file = (ext: string) => join(lab.dir, `keepalived-r${n}.${ext}`);
    writeFileSync(file("conf"), keepalivedConf(n, fall, rise));
    const p = lab.routers[n - 1].spawn(
      [
        "keepalived",
        "--dont-fork",
        "--log-console",
        "--no-syslog",
        "--vrrp",
        "--use-file",
        file("conf"),
        "--pid",
        file("pid"),
        "--vrrp_pid",
        file("vrrp.pid"),
        "--checkers_pid",
        file("checkers.pid"),
      ],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    const log = createWriteStream(file("log"));
    p.stdout!.pipe(log);
    p.stderr!.pipe(log);
    procs.push(p);
  }
  await waitUntil(
    async () => (await lab.routers[0].ip("-br", "addr", "show", "lan0")).includes(VIRTUAL_GATEWAY),
    "r1 to hold the virtual gateway",
    20_000,
  );
}
