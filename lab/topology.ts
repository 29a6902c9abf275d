// The white paper's topology in network namespaces: "the internet" (the edge's address), two
// routers with NAT (so each uplink has its own public address), each wired to it through a "wire"
// namespace (a bridge, or a delay line for a slow uplink), a probe SBC behind each, and servers on
// both routers' LANs. Addresses: TEST-NET (203.0.113.0/24, 198.51.100.0/24) for the
// public side, 192.168.N.0/24 for router N's LAN; all of them exist only inside the namespaces.
import type { ChildProcess } from "node:child_process";
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import {
  dhcpUnavailable,
  macFor,
  startDhcpClient,
  startDhcpServer,
  type DhcpClient,
  type Reservation,
} from "./dhcp.ts";
import { NetnsSet, answered, onPath, sh, waitUntil, type Netns } from "./netns.ts";
import { addLanProfile, startNetworkManager, type NetworkManagerInNs } from "./network-manager.ts";

/** Why the lab cannot make an uplink slow here, or null. */
export function delayLineUnavailable(): string | null {
  return onPath("python3") && onPath("ethtool")
    ? null
    : "a slow uplink needs `python3` and `ethtool` (apt-get install python3 ethtool)";
}

export const EDGE_ADDRESS = "203.0.113.10";
/** Router N's public (WAN) address: what the edge sees for uplink N after NAT. */
export const publicAddress = (n: 1 | 2, renumbered = false) => `198.51.100.${(n === 1 ? 1 : 5) + (renumbered ? 8 : 0)}`;
/** The internet's end of router N's WAN link (a /30 with the router's public address). */
export const wanPeer = (n: 1 | 2, renumbered = false) => `198.51.100.${(n === 1 ? 2 : 6) + (renumbered ? 8 : 0)}`;
export const gateway = (n: 1 | 2) => `192.168.${n}.1`;
/** The edge's IPv6 address on "the internet" (with DHCP, which brings IPv6). */
export const EDGE_ADDRESS6 = "2001:db8:ff::10";
/** Router N's global IPv6 prefix (a /64 behind it, advertised on its LAN), without its "::/64". */
export const prefix6 = (n: 1 | 2) => `2001:db8:${n}`;
const wan6 = (n: 1 | 2) => `2001:db8:f${n}`;
const WIRE_PORTS = ["r", "i"] as const;
const DELAY_LINE = join(import.meta.dirname, "delay-line.py");

export interface ServerSpec {
  /** Namespace role name, e.g. "srv1". */
  name: string;
  /** nmcli: NetworkManager runs in the namespace and owns the LAN addresses and default routes. */
  networkManager?: boolean;
  /** More NetworkManager configuration for it (NetworkManager.conf syntax). */
  networkManagerConfig?: string;
}

export interface LabServer {
  name: string;
  ns: Netns;
  /** This server's address on router N's LAN. */
  address: (n: 1 | 2) => string;
  nm: NetworkManagerInNs | null;
  /** Environment a process needs to reach this server's NetworkManager (nmcli). */
  env: Record<string, string>;
  /** Its DHCP clients by LAN, where it runs its own (not under NetworkManager, and with DHCP on). */
  dhcp: Map<1 | 2, DhcpClient>;
}

export interface Lab {
  sets: NetnsSet;
  inet: Netns;
  routers: [Netns, Netns];
  sbcs: [Netns, Netns];
  servers: LabServer[];
  dir: string;
  /** Addresses come from the routers by DHCP (else they are set statically). */
  dhcp: boolean;
  /** Uplink N loses its internet while router N's LAN stays up: the failure Linux cannot handle alone. */
  cut(n: 1 | 2): Promise<void>;
  restore(n: 1 | 2): Promise<void>;
  /**
   * Router N drops this share of the packets it sends out its WAN (0 mends it): a lossy uplink.
   * With nftables' random numbers: this kernel has no netem.
   */
  lossy(n: 1 | 2, percent: number): Promise<void>;
  /**
   * Uplink N's wire holds every frame this long each way (0 mends it): a slow uplink, its round
   * trip twice this. A delay line in userspace (lab/delay-line.py): no netem here either.
   */
  delayed(n: 1 | 2, oneWayMs: number): Promise<void>;
  /**
   * Router N's advertisements say it is a default router (for 30 min) or not (router lifetime 0),
   * as routers advertise when their own IPv6 upstream is gone; its prefix stays. With DHCP only.
   */
  ipv6DefaultRouter(n: 1 | 2, on: boolean): Promise<void>;
  /** Router N dies entirely: its LAN goes down too. */
  routerDown(n: 1 | 2): Promise<void>;
  routerUp(n: 1 | 2): Promise<void>;
  /**
   * Uplink N's ISP gives its router a new public address (a new WAN lease), or the first one
   * back: NAT then sends from it, and connections made through the old one are dead.
   */
  renumber(n: 1 | 2, renumbered: boolean): Promise<void>;
  /**
   * A server's network as a reboot leaves it (the agent is the caller's): its addresses and routes
   * flushed, its DHCP clients or NetworkManager restarted; resolves once it has its addresses again.
   */
  rebootNetwork(name: string): Promise<void>;
  destroy(): Promise<void>;
}

/** The SBC behind each router is host 10 on its LAN; server k is host 21 + k on both. */
const SBC_HOST = 10;
const serverHost = (k: number) => 21 + k;
/** Server k's (0-based) address on LAN N: the source address of its uplink N. */
export const serverAddress = (k: number, n: 1 | 2) => `192.168.${n}.${serverHost(k)}`;

export async function createLab(o: { servers: ServerSpec[]; dir: string; dhcp?: boolean }): Promise<Lab> {
  // Real address assignment where the tools are here; static addresses otherwise (same addresses).
  const dhcp = o.dhcp ?? dhcpUnavailable() === null;
  const sets = new NetnsSet("l");
  // The folder belongs to the lab: whatever a killed run left there (edge state, secrets) goes.
  rmSync(o.dir, { recursive: true, force: true });
  mkdirSync(o.dir, { recursive: true });
  sets.onDestroy(() => rmSync(o.dir, { recursive: true, force: true }));
  try {
    // IPv6 comes with the routers' advertisements, which dnsmasq sends: with DHCP.
    const v6 = { ipv6: dhcp };
    const inet = await sets.add("inet", v6);
    await inet.ip("addr", "add", `${EDGE_ADDRESS}/32`, "dev", "lo");
    if (dhcp) {
      await inet.ip("addr", "add", `${EDGE_ADDRESS6}/128`, "dev", "lo");
      // A cut (the link down) must not cost the internet its IPv6 addresses, only its routes.
      await inet.exec([
        "sysctl",
        "-qw",
        "net.ipv6.conf.all.keep_addr_on_down=1",
        "net.ipv6.conf.default.keep_addr_on_down=1",
      ]);
    }
    const routers = [await sets.add("r1", v6), await sets.add("r2", v6)] as [Netns, Netns];
    const dhcpServers: ({ process: ChildProcess; reservations: Reservation[] } | undefined)[] = [];
    const wires = [await sets.add("w1"), await sets.add("w2")] as [Netns, Netns];
    const sbcs = [await sets.add("sbc1", v6), await sets.add("sbc2", v6)] as [Netns, Netns];
    const serverNs = [];
    for (const s of o.servers) serverNs.push(await sets.add(s.name, v6));

    for (const n of [1, 2] as const) {
      const r = routers[n - 1];
      const wan = publicAddress(n);
      const peer = wanPeer(n);
      // Router N's WAN reaches the internet's port rN through the wire's bridge, ports "r" and "i".
      const w = wires[n - 1];
      await r.ip("link", "add", "wan", "type", "veth", "peer", "name", "r", "netns", w.name);
      await inet.ip("link", "add", `r${n}`, "type", "veth", "peer", "name", "i", "netns", w.name);
      await w.ip("link", "add", "name", "wire", "type", "bridge");
      for (const p of WIRE_PORTS) await w.ip("link", "set", p, "master", "wire", "up");
      await w.ip("link", "set", "wire", "up");
      await r.ip("addr", "add", `${wan}/30`, "dev", "wan");
      await inet.ip("addr", "add", `${peer}/30`, "dev", `r${n}`);
      await r.ip("link", "set", "wan", "up");
      await inet.ip("link", "set", `r${n}`, "up");
      await r.ip("route", "add", "default", "via", peer);
      if (dhcp) {
        // No NAT for IPv6: "the internet" routes each router's own prefix to it.
        await r.ip("addr", "add", `${wan6(n)}::1/64`, "dev", "wan", "nodad");
        await inet.ip("addr", "add", `${wan6(n)}::2/64`, "dev", `r${n}`, "nodad");
        await r.ip("-6", "route", "add", "default", "via", `${wan6(n)}::2`);
        await inet.ip("-6", "route", "add", `${prefix6(n)}::/64`, "via", `${wan6(n)}::1`);
        // A router that dies and comes back (its LAN ports down, then up) keeps its addresses, as a real one does.
        await r.exec([
          "sysctl",
          "-qw",
          "net.ipv6.conf.all.forwarding=1",
          "net.ipv6.conf.all.keep_addr_on_down=1",
          "net.ipv6.conf.default.keep_addr_on_down=1",
        ]);
      }
      // A MAC of its own (host 1, as its address), as a router's LAN port has: a bridge otherwise
      // takes its ports' lowest, so its link-local address (the IPv6 router the hosts learn) would
      // change when its ports go down and up (scenario 4), as if the router had been replaced.
      await r.ip("link", "add", "br-lan", "address", macFor(1, n), "type", "bridge");
      await r.ip("addr", "add", `${gateway(n)}/24`, "dev", "br-lan");
      if (dhcp) await r.ip("addr", "add", `${prefix6(n)}::1/64`, "dev", "br-lan", "nodad");
      await r.ip("link", "set", "br-lan", "up");
      await r.exec(["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
      await r.exec(["nft", "-f", "-"], {
        input: 'table ip nat { chain post { type nat hook postrouting priority srcnat; oifname "wan" masquerade; }; }',
      });
      // The SBC: one LAN, one default route.
      const sbc = sbcs[n - 1];
      await r.ip(
        "link",
        "add",
        "sbc",
        "type",
        "veth",
        "peer",
        "name",
        "eth0",
        "netns",
        sbc.name,
        "address",
        macFor(SBC_HOST, n),
      );
      await r.ip("link", "set", "sbc", "master", "br-lan", "up");
      await sbc.ip("link", "set", "eth0", "up");
      for (const [k, ns] of serverNs.entries()) {
        await r.ip(
          "link",
          "add",
          `s${k + 1}`,
          "type",
          "veth",
          "peer",
          "name",
          `lan${n}`,
          "netns",
          ns.name,
          "address",
          macFor(serverHost(k), n),
        );
        await r.ip("link", "set", `s${k + 1}`, "master", "br-lan", "up");
      }
      if (dhcp) {
        const hosts = [SBC_HOST, ...o.servers.map((_, k) => serverHost(k))];
        const reservations: Reservation[] = hosts.map((h) => ({ mac: macFor(h, n), address: `192.168.${n}.${h}` }));
        dhcpServers[n - 1] = { process: startDhcpServer(r, n, o.dir, reservations), reservations };
        await startDhcpClient(sbc, "eth0", 0, o.dir, `192.168.${n}.${SBC_HOST}`);
      } else {
        await sbc.ip("addr", "add", `192.168.${n}.${SBC_HOST}/24`, "dev", "eth0");
        await sbc.ip("route", "add", "default", "via", gateway(n));
      }
    }

    /** A server's LANs up with their addresses and default routes, where NetworkManager does not do it. */
    const addressLans = async (server: LabServer) => {
      const { ns, address } = server;
      for (const n of [1, 2] as const) {
        await ns.ip("link", "set", `lan${n}`, "up");
        if (dhcp) server.dhcp.set(n, await startDhcpClient(ns, `lan${n}`, 99 + n, o.dir, address(n)));
        else {
          await ns.ip("addr", "add", `${address(n)}/24`, "dev", `lan${n}`);
          await ns.ip("route", "add", "default", "via", gateway(n), "dev", `lan${n}`, "metric", String(99 + n));
        }
      }
    };
    /** Both routers heard and an address of each prefix usable (past duplicate detection). */
    const networkReady = async ({ ns, name }: LabServer) => {
      if (dhcp)
        await waitUntil(async () => (await ipv6Ready(ns)).length === 2, `${name}: IPv6 from both routers`, 20_000, 100);
    };

    const servers: LabServer[] = [];
    for (const [k, spec] of o.servers.entries()) {
      const ns = serverNs[k]!;
      const address = (n: 1 | 2) => `192.168.${n}.${serverHost(k)}`;
      // Loose reverse-path filtering, as on a multi-homed server (strict drops the second LAN's replies).
      await ns.exec(["sysctl", "-qw", "net.ipv4.conf.all.rp_filter=2", "net.ipv4.conf.default.rp_filter=2"]);
      let nm: NetworkManagerInNs | null = null;
      if (spec.networkManager) {
        nm = await startNetworkManager(ns, join(o.dir, `nm-${spec.name}`), spec.networkManagerConfig);
        sets.onDestroy(() => nm!.stop());
        for (const n of [1, 2] as const) {
          const addressing = dhcp ? "auto" : { address: `${address(n)}/24`, gateway: gateway(n) };
          await addLanProfile(nm, { ifname: `lan${n}`, name: `up${n}`, routeMetric: 99 + n, addressing });
        }
      }
      const server: LabServer = { name: spec.name, ns, address, nm, env: nm ? nm.env : {}, dhcp: new Map() };
      if (!nm) await addressLans(server);
      await networkReady(server);
      servers.push(server);
    }

    const wanLink = async (n: 1 | 2, state: "up" | "down") => {
      await inet.ip("link", "set", `r${n}`, state);
      // A link that goes down takes its IPv6 routes with it: the internet's route to the prefix comes back with the link.
      if (dhcp && state === "up") await inet.ip("-6", "route", "replace", `${prefix6(n)}::/64`, "via", `${wan6(n)}::1`);
    };
    const delayLines: (ChildProcess | null)[] = [null, null];
    sets.onDestroy(() => {
      for (const p of delayLines) p?.kill("SIGKILL");
    });
    const lanPorts = async (n: 1 | 2, state: "up" | "down") => {
      const r = routers[n - 1];
      for (const port of ["sbc", ...o.servers.map((_, k) => `s${k + 1}`)]) await r.ip("link", "set", port, state);
      await r.ip("link", "set", "br-lan", state);
    };
    return {
      sets,
      inet,
      routers,
      sbcs,
      servers,
      dir: o.dir,
      dhcp,
      cut: (n) => wanLink(n, "down"),
      restore: (n) => wanLink(n, "up"),
      lossy: async (n, percent) => {
        const r = routers[n - 1];
        await r.exec(["nft", "-f", "-"], { input: "table ip lossy {}\ndelete table ip lossy\n" });
        if (percent > 0)
          await r.exec(["nft", "-f", "-"], {
            input: `table ip lossy {\n chain forward {\n  type filter hook forward priority 0;\n  oifname "wan" numgen random mod 100 < ${percent} drop\n }\n}\n`,
          });
      },
      delayed: async (n, oneWayMs) => {
        const w = wires[n - 1];
        const line = delayLines[n - 1];
        const running = line !== null && line.exitCode === null && line.signalCode === null;
        // Raw frames pass the line as they are: while it runs, both senders checksum and segment in software.
        const offloads = (state: "on" | "off") =>
          Promise.all([
            routers[n - 1].exec(["ethtool", "-K", "wan", "tx", state, "tso", state, "gso", state]),
            inet.exec(["ethtool", "-K", `r${n}`, "tx", state, "tso", state, "gso", state]),
          ]);
        const ports = (how: "master" | "nomaster") =>
          Promise.all(
            WIRE_PORTS.map((p) => w.ip("link", "set", p, ...(how === "master" ? ["master", "wire"] : ["nomaster"]))),
          );
        // No swap or change leaves a gap, which under load can outlast a TCP resend or two and
        // read as an outage: the bridge and the line overlap (a few duplicate frames), and the
        // line relays all it holds before it goes.
        if (running && oneWayMs > 0) return void (await answered(line, `${oneWayMs}`, `delay ${oneWayMs}`));
        if (line) {
          await ports("master");
          if (running) {
            await answered(line, "mute", "muted");
            await new Promise((done) => (line.once("exit", done), line.stdin!.end()));
          }
          delayLines[n - 1] = null;
          await offloads("on");
        }
        if (oneWayMs <= 0) return;
        const why = delayLineUnavailable();
        if (why) throw new Error(why);
        await offloads("off");
        const started = w.spawn(["python3", DELAY_LINE, ...WIRE_PORTS], { stdio: ["pipe", "pipe", "inherit"] });
        delayLines[n - 1] = started;
        await answered(started, null, "ready");
        await answered(started, `${oneWayMs}`, `delay ${oneWayMs}`);
        await ports("nomaster");
      },
      routerDown: async (n) => (await lanPorts(n, "down"), await wanLink(n, "down")),
      routerUp: async (n) => (await lanPorts(n, "up"), await wanLink(n, "up")),
      rebootNetwork: async (name) => {
        const server = servers.find((x) => x.name === name);
        if (!server) throw new Error(`no server ${name} in the lab`);
        const { ns } = server;
        // Down as a shutdown leaves it: no DHCP client, no NetworkManager, no address or route.
        for (const c of server.dhcp.values()) c.child.kill("SIGKILL");
        server.dhcp.clear();
        await server.nm?.stop();
        for (const n of [1, 2] as const) {
          await ns.ip("link", "set", `lan${n}`, "down");
          await ns.ip("addr", "flush", "dev", `lan${n}`);
        }
        for (const family of ["-4", "-6"]) await ns.ip(family, "route", "flush", "table", "main");
        // Up as a boot brings it: NetworkManager from its stored profiles, or the links and DHCP clients.
        if (server.nm) {
          for (const n of [1, 2] as const) await ns.ip("link", "set", `lan${n}`, "up");
          const nm = await startNetworkManager(ns, join(o.dir, `nm-${name}`));
          sets.onDestroy(() => nm.stop());
          server.nm = nm;
        } else await addressLans(server);
        await networkReady(server);
      },
      ipv6DefaultRouter: async (n, on) => {
        const server = dhcpServers[n - 1];
        if (!server) throw new Error("the lab's routers advertise IPv6 only with DHCP");
        if (server.process.exitCode === null && server.process.signalCode === null) {
          const exited = new Promise((r) => server.process.once("exit", r));
          server.process.kill();
          await exited;
        }
        server.process = startDhcpServer(routers[n - 1], n, o.dir, server.reservations, on ? 1800 : 0);
      },
      renumber: async (n, renumbered) => {
        const r = routers[n - 1];
        const [from, to] = [!renumbered, renumbered];
        await inet.ip("addr", "add", `${wanPeer(n, to)}/30`, "dev", `r${n}`);
        await r.ip("addr", "add", `${publicAddress(n, to)}/30`, "dev", "wan");
        await r.ip("route", "replace", "default", "via", wanPeer(n, to));
        await r.ip("addr", "del", `${publicAddress(n, from)}/30`, "dev", "wan");
        // The kernel forgets the flows masqueraded to the removed address: they are dead, as on a real router.
        await inet.ip("addr", "del", `${wanPeer(n, from)}/30`, "dev", `r${n}`);
      },
      destroy: () => sets.destroy(),
    };
  } catch (err) {
    await sets.destroy();
    throw err;
  }
}

/** The LANs on which `ns` has an IPv6 default route and a usable global address of that router's prefix. */
export async function ipv6Ready(ns: Netns): Promise<string[]> {
  const routes = JSON.parse((await ns.ip("-j", "-6", "route", "show", "default")) || "[]") as { dev: string }[];
  const addrs = JSON.parse(await ns.ip("-j", "-6", "addr", "show", "scope", "global")) as {
    ifname: string;
    addr_info: { local?: string; tentative?: boolean }[];
  }[];
  return routes
    .map((r) => r.dev)
    .filter(
      (dev, i, all) =>
        all.indexOf(dev) === i &&
        addrs.some((a) => a.ifname === dev && a.addr_info.some((x) => x.local && !x.tentative)),
    );
}

/** Seconds left of each global IPv6 address of `ns` (SLAAC: renewed by each advertisement of its prefix), by address. */
export async function ipv6Lifetimes(ns: Netns): Promise<Map<string, number>> {
  const links = JSON.parse(await ns.ip("-j", "-6", "addr", "show", "scope", "global")) as {
    addr_info: { local?: string; valid_life_time?: number }[];
  }[];
  return new Map(
    links.flatMap((l) =>
      l.addr_info.flatMap((a) => (a.local ? [[a.local, a.valid_life_time ?? Infinity] as const] : [])),
    ),
  );
}

/** The interface a new connection from `ns` to the edge (or, with 6, to the internet's IPv6 address) leaves through. */
export async function routeToEdge(ns: Netns, family: 4 | 6 = 4): Promise<string | undefined> {
  const out = JSON.parse(
    await ns.ip("-j", `-${family}`, "route", "get", family === 4 ? EDGE_ADDRESS : EDGE_ADDRESS6),
  ) as { dev?: string }[];
  return out[0]?.dev;
}

/** Writes a file inside the lab folder (configs, secrets). */
export function labFile(lab: Lab, name: string, content: string, mode = 0o600): string {
  const path = join(lab.dir, name);
  writeFileSync(path, content, { mode });
  return path;
}

export { sh };
