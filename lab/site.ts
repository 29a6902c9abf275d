// A whole wanwatch site on the lab's test hosts: the real edge (workerd) on "the internet", a
// tunnel endpoint that records which public address each tunnel connection comes from, a probe
// behind each router, and servers on both LANs, each running a stand-in tunnel. Every agent is
// the built bundle as its own process, enrolled through the admin CLI. Shared by the lab
// scenarios, `npm run bench:failover` and `npm run demo` (as root).
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { connect, createServer, type Socket } from "node:net";
import { networkManagerUnavailable } from "./network-manager.ts";
import type { SiteConfigInput, SiteEvent, SiteStatus } from "#shared";
import { freePort, startLocalEdge, type LocalEdge } from "../tools/local-edge.ts";
import { BUNDLE, Daemon, NODE20, NODE22, ROOT, buildBundle } from "./agent-process.ts";
import { OWN_METRIC } from "../agent/src/host/own-route.ts";
import { waitUntil } from "./netns.ts";
import {
  EDGE_ADDRESS,
  EDGE_ADDRESS6,
  createLab,
  gateway,
  labFile,
  routeToEdge,
  serverAddress,
  type Lab,
  type LabServer,
} from "./topology.ts";

export const SITE = "office";

/** Each agent namespace's hosts file names the edge (see LabSiteOptions.edgeName); removed with the lab. */
function nameTheEdge(lab: Lab, name: string): void {
  const records = [`${EDGE_ADDRESS} ${name}`, ...(lab.dhcp ? [`${EDGE_ADDRESS6} ${name}`] : [])];
  for (const ns of [...lab.sbcs, ...lab.servers.map((s) => s.ns)]) {
    const dir = join("/etc/netns", ns.name);
    mkdirSync(dir, { recursive: true });
    lab.sets.onDestroy(() => rmSync(dir, { recursive: true, force: true }));
    writeFileSync(join(dir, "hosts"), `127.0.0.1 localhost\n::1 localhost\n${records.join("\n")}\n`);
  }
}
export const TUNNEL_PORT = 7844;
const TUNNEL_READY_PORT = 2000;

export interface ServerPlan {
  name: string;
  backend: "iproute2" | "nmcli";
  /** Which Node runs its agent: the bundle must work on the machine's Node 20 and on 22. */
  node: string;
}

export interface LabSiteOptions {
  dir: string;
  policy: {
    heartbeatMs: number;
    downAfterMs: number;
    failbackAfterMs: number;
    minDwellMs: number;
    witnessQuorum?: number;
  };
  /** The site's uplinks (default: isp1 "Fiber", isp2 "LTE", neither metered). */
  uplinks?: readonly SiteConfigInput["uplinks"][number][];
  tunnels?: TunnelMode;
  /**
   * Pinned replicas: each server runs one stand-in tunnel per uplink, bound to that uplink's
   * source address (cloudflared's --edge-bind-address), and its agent restarts a replica only when
   * its uplink comes back (`tunnels.backend: pinned`); the site's restart mode is `none`.
   */
  pinned?: boolean;
  /** Every stand-in tunnel sends a keepalive this often, and the endpoint logs each one it receives. */
  tunnelKeepaliveMs?: number;
  servers?: ServerPlan[];
  /**
   * Agents reach the edge by this name instead of its IPv4 address: its A record and, with IPv6 in
   * the lab, its AAAA record (the edge then listens on both families), from each agent namespace's
   * own hosts file (`ip netns exec` mounts /etc/netns/NS/hosts over /etc/hosts).
   */
  edgeName?: string;
  /** Loopback port for `hostUrl` (default: a free one). */
  hostPort?: number;
  /** The edge's own output (default: its log file in the lab folder). */
  edgeLog?: (line: string) => void;
  /**
   * A server's tunnel as its agent restarts it (its `tunnels` config, the environment it needs),
   * when the tunnel is not the stand-in process this file starts on each server (e.g. a Swarm service).
   */
  serverTunnel?: (server: string) => { config: object; env: Record<string, string> };
}

export type TunnelMode = "per-server" | "cluster" | "none";

/** One connection seen by the tunnel endpoint. */
export interface TunnelConnect {
  remote: string;
  at: number;
}

export const DEFAULT_SERVERS: ServerPlan[] = [
  { name: "srv1", backend: "iproute2", node: NODE20 },
  { name: "srv2", backend: "nmcli", node: NODE22 },
];

/** DEFAULT_SERVERS, both on iproute2 where NetworkManager cannot run here. */
export const labServers = (): ServerPlan[] =>
  networkManagerUnavailable() ? DEFAULT_SERVERS.map((s) => ({ ...s, backend: "iproute2" as const })) : DEFAULT_SERVERS;

interface AgentPlan {
  netns: string;
  node: string;
  configPath: string;
  env: Record<string, string>;
}

export class LabSite {
  readonly agents = new Map<string, Daemon>();
  private readonly plans = new Map<string, AgentPlan>();

  readonly lab: Lab;
  readonly edge: LocalEdge;
  readonly endpoint: Daemon;
  readonly options: LabSiteOptions;
  /** The edge, reachable from this host's loopback (forwarded into "the internet"): for browsers and tests. */
  readonly hostUrl: string;

  // Plain fields, not parameter properties: the demo and the benchmark run this file on Node's type stripping.
  private constructor(lab: Lab, edge: LocalEdge, endpoint: Daemon, hostUrl: string, options: LabSiteOptions) {
    this.lab = lab;
    this.edge = edge;
    this.endpoint = endpoint;
    this.hostUrl = hostUrl;
    this.options = options;
  }

  static async start(o: LabSiteOptions): Promise<LabSite> {
    buildBundle();
    const servers = o.servers ?? DEFAULT_SERVERS;
    const lab = await createLab({
      servers: servers.map((s) => ({ name: s.name, networkManager: s.backend === "nmcli" })),
      dir: o.dir,
    });
    try {
      if (o.edgeName) nameTheEdge(lab, o.edgeName);
      const edge = await startLocalEdge({
        host: EDGE_ADDRESS,
        ...(o.edgeName && lab.dhcp ? { listen: "::" } : {}),
        port: 80,
        netns: lab.inet.name,
        stateDir: join(lab.dir, "edge"),
        publicStatus: true,
        log: o.edgeLog,
      });
      lab.sets.onDestroy(() => edge.stop());
      // With IPv6 in the lab, the endpoint also listens on the internet's IPv6 address.
      const hosts = [EDGE_ADDRESS, ...(lab.dhcp ? [EDGE_ADDRESS6] : [])];
      const endpoint = new Daemon(
        lab.inet.spawn([
          NODE22,
          join(ROOT, "test/fixtures/tunnel-endpoint.mjs"),
          ...hosts.flatMap((h) => ["--host", h]),
          "--port",
          String(TUNNEL_PORT),
          ...(o.tunnelKeepaliveMs ? ["--log-data"] : []),
        ]),
      );
      await waitUntil(
        () => endpoint.lines.filter((l) => l.event === "listening").length === hosts.length,
        "tunnel endpoint",
      );
      const hostUrl = await forwardToEdge(lab, o.hostPort);
      const site = new LabSite(lab, edge, endpoint, hostUrl, o);
      lab.sets.onDestroy(() => site.stopAgents());
      await site.enrol(servers);
      return site;
    } catch (err) {
      await lab.destroy();
      throw err;
    }
  }

  /** Applies the site config (through the admin CLI), with this tunnel mode and policy. */
  async applySite(
    tunnels: TunnelMode = this.options.tunnels ?? (this.options.pinned ? "none" : "per-server"),
    policy: Record<string, number> = this.options.policy,
  ): Promise<void> {
    const site = labFile(
      this.lab,
      `site-${tunnels}.json`,
      JSON.stringify({
        uplinks: this.options.uplinks ?? [
          { id: "isp1", priority: 1, name: "Fiber" },
          { id: "isp2", priority: 2, name: "LTE" },
        ],
        policy,
        tunnels: { restart: tunnels },
      }),
    );
    await this.admin("apply", site);
  }

  private async enrol(servers: ServerPlan[]): Promise<void> {
    const { policy } = this.options;
    await this.applySite();
    for (const n of [1, 2] as const) {
      const { secret } = await this.admin(
        "enroll",
        "--id",
        `sbc${n}`,
        "--role",
        "probe",
        "--uplink",
        `isp${n}`,
        "--secret",
      );
      this.plan(`sbc${n}`, this.lab.sbcs[n - 1].name, NODE20, {
        edge: this.agentEdge(),
        site: SITE,
        agent: `sbc${n}`,
        role: "probe",
        heartbeatMs: policy.heartbeatMs,
        secretFile: labFile(this.lab, `sbc${n}.secret`, secret),
        stateDir: join(this.lab.dir, `sbc${n}`),
        uplinks: [{ id: `isp${n}`, interface: "eth0" }],
      });
      this.startAgent(`sbc${n}`);
    }
    for (const [k, s] of servers.entries()) {
      const srv = this.lab.servers[k]!;
      // Every server may restart the tunnels: in cluster mode the edge elects one of them.
      const { secret } = await this.admin(
        "enroll",
        "--id",
        s.name,
        "--role",
        "server",
        "--tunnel-restarter",
        "--secret",
      );
      const dir = join(this.lab.dir, s.name);
      mkdirSync(dir, { recursive: true });
      const restart = this.tunnelRestart(s.name);
      const replicas = ([1, 2] as const).map((n) =>
        this.tunnelRestart(s.name, { uplink: n, bind: serverAddress(k, n) }),
      );
      const tunnel = this.options.serverTunnel?.(s.name) ?? {
        config: this.options.pinned
          ? {
              backend: "pinned",
              replicas: Object.fromEntries(
                replicas.map((command, i) => [
                  `isp${i + 1}`,
                  { backend: "command", command, timeoutMs: 20_000, readyUrl: readyUrl(TUNNEL_READY_PORT + i + 1) },
                ]),
              ),
            }
          : { backend: "command", command: restart, timeoutMs: 20_000, readyUrl: readyUrl(TUNNEL_READY_PORT) },
        env: {},
      };
      this.plan(
        s.name,
        srv.ns.name,
        s.node,
        {
          edge: this.agentEdge(),
          site: SITE,
          agent: s.name,
          role: "server",
          heartbeatMs: policy.heartbeatMs,
          secretFile: labFile(this.lab, `${s.name}.secret`, secret),
          stateDir: join(dir, "state"),
          uplinks: [1, 2].map((n) => ({
            id: `isp${n}`,
            interface: `lan${n}`,
            ...(s.backend === "nmcli" ? { connection: `up${n}` } : {}),
          })),
          switch: { backend: s.backend },
          tunnels: tunnel.config,
        },
        { ...srv.env, ...tunnel.env },
      );
      if (this.options.serverTunnel) this.startAgent(s.name);
      else if (this.options.pinned) {
        // Pinned replicas start once the agent's per-uplink routing is in (as a unit ordered after
        // the agent's would): before it, a replica bound to isp2's address would leave through the
        // default route, isp1.
        await this.startAgent(s.name).waitFor((l) => l.msg === "per-uplink routing installed", `${s.name}'s routing`);
        for (const r of replicas) await srv.ns.exec(r);
      } else {
        // The tunnel as it runs before wanwatch: started by hand, through whatever the default route is.
        await srv.ns.exec(restart);
        this.startAgent(s.name);
      }
    }
  }

  /**
   * What restarts one stand-in tunnel of a server (a long-lived TCP connection to the endpoint):
   * its only one, or with `pinned` the replica of uplink N, bound to that uplink's source address.
   */
  private tunnelRestart(server: string, pinned?: { uplink: 1 | 2; bind: string }): string[] {
    const dir = join(this.lab.dir, server);
    const pidFile = join(dir, pinned ? `tunnel-isp${pinned.uplink}.pid` : "tunnel.pid");
    const keepalive = this.options.tunnelKeepaliveMs;
    return [
      join(ROOT, "test/fixtures/restart-tunnel.sh"),
      pidFile,
      NODE20,
      join(ROOT, "test/fixtures/tunnel-client.mjs"),
      "--connect",
      `${EDGE_ADDRESS}:${TUNNEL_PORT}`,
      "--ready-port",
      String(TUNNEL_READY_PORT + (pinned?.uplink ?? 0)),
      "--pid-file",
      pidFile,
      "--name",
      pinned ? `${server}/isp${pinned.uplink}` : server,
      ...(pinned ? ["--bind", pinned.bind] : []),
      ...(keepalive ? ["--send-every", String(keepalive)] : []),
    ];
  }

  /** The edge's URL as agents are configured with it: by name when the site was started with one. */
  agentEdge(): string {
    if (!this.options.edgeName) return this.edge.url;
    const u = new URL(this.edge.url);
    u.hostname = this.options.edgeName;
    return u.toString().replace(/\/$/, "");
  }

  private plan(name: string, netns: string, node: string, config: object, env: Record<string, string> = {}): void {
    this.plans.set(name, { netns, node, env, configPath: labFile(this.lab, `${name}.json`, JSON.stringify(config)) });
  }

  server(name: string): LabServer {
    return this.lab.servers.find((s) => s.name === name)!;
  }

  configPath(agent: string): string {
    return this.plans.get(agent)!.configPath;
  }

  /**
   * Restarts an agent with its config changed and more environment; returns what puts both back
   * (and restarts it once more).
   */
  async restartWith(
    name: string,
    change: (config: Record<string, any>) => object,
    env: Record<string, string> = {},
  ): Promise<() => Promise<void>> {
    const p = this.plans.get(name)!;
    const before = readFileSync(p.configPath, "utf8");
    await this.stopAgent(name);
    writeFileSync(p.configPath, JSON.stringify(change(JSON.parse(before))), { mode: 0o600 });
    this.plans.set(name, { ...p, env: { ...p.env, ...env } });
    this.startAgent(name);
    return async () => {
      await this.stopAgent(name);
      writeFileSync(p.configPath, before, { mode: 0o600 });
      this.plans.set(name, p);
      this.startAgent(name);
    };
  }

  /**
   * A server rebooted: its agent stopped, its network brought up as a boot does, its agent
   * started; resolves with when the agent started.
   */
  async reboot(name: string): Promise<number> {
    await this.stopAgent(name);
    await this.lab.rebootNetwork(name);
    const startedAt = Date.now();
    this.startAgent(name);
    return startedAt;
  }

  /**
   * Moves a server's IPv4 default route to lan2 behind its agent's back, as the scenario of route
   * drift does (scenario 13, bench:failover): on a plain host a route through lan2 at a better
   * metric (what a DHCP client's hook does); under NetworkManager the backup's profile given the
   * better metric and reapplied (which alone moves nothing: the agent's own route stays ahead), and
   * the agent's own route deleted (an admin flushing routes).
   */
  async driftToLan2(name: string): Promise<void> {
    const { ns, nm } = this.server(name);
    if (!nm) return void (await ns.ip("route", "replace", "default", "via", gateway(2), "dev", "lan2", "metric", "50"));
    await nm.nmcli("connection", "modify", "up2", "ipv4.route-metric", "50");
    await nm.nmcli("device", "reapply", "lan2");
    await ns.ip("route", "del", "default", "metric", String(OWN_METRIC));
  }

  /** Until `name`'s new connections to the internet leave through `dev`, IPv6 ones too where the lab has IPv6. */
  async routedThrough(name: string, dev: string, ms = 10_000): Promise<void> {
    const { ns } = this.server(name);
    await waitUntil(
      async () =>
        (await routeToEdge(ns)) === dev &&
        (!this.lab.dhcp || (await routeToEdge(ns, 6).catch(() => undefined)) === dev),
      `${name}'s routes through ${dev}`,
      ms,
      20,
    );
  }

  /** (Re)starts an agent as a new process; its log starts afresh. */
  startAgent(name: string): Daemon {
    const p = this.plans.get(name)!;
    const d = Daemon.start(["agent", "run", "--config", p.configPath], { netns: p.netns, node: p.node, env: p.env });
    this.agents.set(name, d);
    return d;
  }

  async stopAgent(name: string, signal: NodeJS.Signals = "SIGTERM"): Promise<void> {
    const d = this.agents.get(name);
    if (!d || d.child.exitCode !== null || d.child.signalCode !== null) return;
    d.child.kill(signal);
    await Promise.race([d.exit, new Promise((r) => setTimeout(r, 8_000))]);
  }

  private async stopAgents(): Promise<void> {
    await Promise.all([...this.agents.keys()].map((n) => this.stopAgent(n)));
  }

  /** The admin CLI (the bundle), run on "the internet" where the edge listens. */
  async admin(...args: string[]): Promise<any> {
    const out = await this.lab.inet.exec(
      [NODE22, BUNDLE, "site", ...args, "--edge", this.edge.url, "--site", SITE, "--json"],
      {
        env: { ...process.env, WANWATCH_ADMIN_TOKEN: this.edge.adminToken },
      },
    );
    return out.trim() ? JSON.parse(out) : null;
  }

  /** An HTTP request to the edge, with the admin token unless told otherwise. */
  async request(
    path: string,
    o: { method?: string; body?: string; token?: string | null } = {},
  ): Promise<{ status: number; body: string }> {
    const token = o.token === undefined ? this.edge.adminToken : o.token;
    const headers: Record<string, string> = {
      ...(token ? { authorization: `Bearer ${token}` } : {}),
      ...(o.body ? { "content-type": "application/json" } : {}),
    };
    const res = await fetch(`${this.hostUrl}${path}`, {
      method: o.method,
      body: o.body,
      headers,
      signal: AbortSignal.timeout(10_000),
    });
    return { status: res.status, body: await res.text() };
  }

  async status(): Promise<SiteStatus> {
    const r = await this.request(`/v1/sites/${SITE}/status`);
    if (r.status !== 200) throw new Error(`status: HTTP ${r.status} ${r.body}`);
    return JSON.parse(r.body) as SiteStatus;
  }

  async events(limit = 200): Promise<SiteEvent[]> {
    const r = await this.request(`/v1/sites/${SITE}/events?limit=${limit}`);
    if (r.status !== 200) throw new Error(`events: HTTP ${r.status} ${r.body}`);
    return (JSON.parse(r.body) as SiteEvent[]).reverse(); // oldest first
  }

  /** Waits until the site's status satisfies `ok`; the error shows the last status seen. */
  async until(ok: (s: SiteStatus) => boolean, what: string, ms = 20_000, everyMs = 100): Promise<SiteStatus> {
    let last: SiteStatus | null = null;
    const check = async () => {
      const s = await this.status().catch(() => null); // the edge may be restarting
      return s !== null && ok((last = s));
    };
    await waitUntil(check, what, ms, everyMs).catch((err) => {
      throw new Error(`${(err as Error).message}; last status: ${JSON.stringify(last)}`);
    });
    return last!;
  }

  /**
   * Opens one TCP connection from a server to the endpoint's IPv6 address; the source address the
   * endpoint saw it come from (which router's prefix it left through). Servers may ask at once.
   */
  async ipv6Source(server: string, timeoutMs = 5_000): Promise<string> {
    const seen = this.endpoint.lines.length;
    const script = `require("node:net").connect(${TUNNEL_PORT}, "${EDGE_ADDRESS6}", function () { console.log(this.localAddress); this.end(); }).on("error", (e) => { console.error(e.message); process.exit(1); });`;
    const ns = this.server(server).ns;
    const out = await ns.exec([NODE22, "-e", script], { timeoutMs }).catch(async (err: Error) => {
      // What the server had at that moment, for the failing test's message.
      const had = await Promise.all(
        [["route", "get", EDGE_ADDRESS6], ["route"], ["addr", "show", "scope", "global"], ["neigh"]].map((a) =>
          ns.ip("-6", ...a).catch((e: Error) => e.message),
        ),
      );
      throw new Error(
        `${server}: no IPv6 connection to ${EDGE_ADDRESS6} (${err.message.split("\n").at(-1)}); it had: ${had.join(" | ").replace(/\s+/g, " ")}`,
      );
    });
    const source = out.trim();
    const arrived = () =>
      this.endpoint.lines.slice(seen).some((l) => l.event === "connect" && String(l.remote).endsWith(source));
    await waitUntil(arrived, `${server}'s IPv6 connection from ${source} at the endpoint`, 5_000);
    return source;
  }

  /** Each stand-in tunnel's introduction at the endpoint: which one (server, or server/uplink), which process, from where. */
  tunnelHellos(): { name: string; pid: number; remote: string; at: number }[] {
    return this.endpoint.lines
      .filter((l) => l.event === "hello")
      .map((l) => ({ name: l.name as string, pid: l.pid as number, remote: l.remote as string, at: l.at as number }));
  }

  /** Everything the endpoint received from a named tunnel (hello or keepalive), and when: proof it is live. */
  tunnelTraffic(): { name: string; remote: string; at: number; event: string }[] {
    return this.endpoint.lines
      .filter((l) => (l.event === "hello" || l.event === "data" || l.event === "close") && l.name)
      .map((l) => ({
        name: l.name as string,
        remote: l.remote as string,
        at: l.at as number,
        event: l.event as string,
      }));
  }

  tunnelConnects(): TunnelConnect[] {
    return this.endpoint.lines
      .filter((l) => l.event === "connect")
      .map((l) => ({ remote: l.remote as string, at: l.at as number }));
  }

  /** Log lines of an agent's current process. */
  log(agent: string): Record<string, any>[] {
    return this.agents.get(agent)?.lines ?? [];
  }

  destroy(): Promise<void> {
    return this.lab.destroy();
  }
}

/** A loopback listener on this host → a Unix socket → a forwarder inside "the internet" → the edge. */
async function forwardToEdge(lab: Lab, port?: number): Promise<string> {
  const sock = join(lab.dir, "edge.sock");
  const fwd = new Daemon(
    lab.inet.spawn([
      NODE22,
      join(ROOT, "test/fixtures/unix-forward.mjs"),
      "--unix",
      sock,
      "--to",
      `${EDGE_ADDRESS}:80`,
    ]),
  );
  await fwd.waitFor((l) => l.event === "listening", "edge forwarder");
  const open = new Set<Socket>();
  const server = createServer((c) => {
    open.add(c);
    c.on("close", () => open.delete(c));
    const u = connect(sock);
    c.pipe(u).pipe(c);
    const end = () => (c.destroy(), u.destroy());
    c.on("error", end);
    u.on("error", end);
  });
  const p = port ?? (await freePort());
  await new Promise<void>((ok, bad) => server.once("error", bad).listen(p, "127.0.0.1", () => ok()));
  lab.sets.onDestroy(() => {
    for (const c of open) c.destroy();
    server.close();
  });
  return `http://127.0.0.1:${p}`;
}

const readyUrl = (port: number) => `http://127.0.0.1:${port}/ready`;

const agentOf = (s: SiteStatus, id: string) => s.agents.find((a) => a.id === id);

/** The agent applied the current directive, and restarted its tunnel if its directive asked it to. */
export function appliedBy(s: SiteStatus, id: string): boolean {
  const a = agentOf(s, id);
  if (!a || a.appliedGeneration !== s.generation) return false;
  const restarts = s.tunnels.mode === "per-server" || s.tunnels.restarter === id;
  return !restarts || s.tunnels.generation !== s.generation || a.tunnelGeneration === s.generation;
}

/** Every server applied the current directive and the tunnels it owes are restarted. */
export function settled(s: SiteStatus, servers: readonly string[]): boolean {
  return (
    servers.every((id) => appliedBy(s, id)) &&
    (s.tunnels.mode !== "cluster" || s.tunnels.generation !== s.generation || s.tunnels.done)
  );
}
