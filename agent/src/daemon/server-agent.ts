// A server agent: per-uplink policy routing so it can heartbeat through every uplink, and the
// applier that moves the default routes and restarts the tunnels when the edge says so. Level-
// triggered: the host's routes are compared with the directive whenever they change.
import { backoffDelay, type RouteDrift } from "#shared";
import { DirectiveApplier, type Switcher } from "../directive/applier.ts";
import { ReplicaRestarts } from "../directive/replica-restarts.ts";
import { initialState, type ReconcilerState } from "../directive/reconciler.ts";
import type { DirectiveMessage } from "../edge/channel.ts";
import { describeError } from "../lib/errors.ts";
import { Agent, type UplinkPart } from "./agent.ts";
import type { Pin } from "../host/policy-rules.ts";
import { type EdgeAddresses, edgeAddresses, edgePort } from "./edge-address.ts";
import type { UplinkRoute } from "./host-port.ts";
import type { Ipv6Path } from "../host/policy-routing6.ts";
import type { AgentConfig } from "../config/schema.ts";
import type { StatusFile } from "../state/files.ts";

/** How often the host's routes are read even when the watch reports nothing. */
const ROUTES_BACKSTOP_MS = 5_000;
/** Repairs reported in every heartbeat for this long (the edge records each once), at most this many. */
const DRIFT_REPORTED_MS = 5 * 60_000;
const DRIFTS_REPORTED = 4;

/** What moves the routes: set up once the per-uplink routing is in place. */
interface Mover {
  switcher: Switcher;
  applier: DirectiveApplier;
}

export class ServerAgent extends Agent {
  /** Kept as soon as installed, so that a start failing after it still removes it. */
  private routes: Map<string, UplinkRoute> | null = null;
  private mover: Mover | null = null;
  /** `tunnels.backend: pinned`: each uplink's replica, restarted when that uplink comes back. */
  private replicas: ReplicaRestarts | null = null;
  private resumed: ReconcilerState = initialState();
  private routedUplink: string | null = null;
  private routedTimer: NodeJS.Timeout | null = null;
  private stopWatchingRoutes: (() => void) | null = null;
  /** IPv6 rules were put in place once: from then on they are kept current, and removed at the stop. */
  private ipv6Routed = false;
  /** The route drifts repaired lately, oldest first: told to the edge until they age out. */
  private drifts: RouteDrift[] = [];
  private edge: EdgeAddresses | null = null;
  /** The edge's addresses the per-uplink rules pin, as installed. */
  private pinnedEdge = "";

  protected async setUpHost(saved: ReconcilerState): Promise<void> {
    const { config, log } = this.o;
    this.resumed = saved;
    const edge = edgeAddresses(config.edge);
    this.edge = edge;
    let routes: Map<string, UplinkRoute>;
    try {
      // No lookup before the saved directive is applied (DNS may lead through the dead uplink): a
      // name's addresses are pinned once known (keepPinCurrent).
      routes = await this.o.host.installUplinkRouting(config.uplinks, this.pin(edge.known()));
      this.routes = routes;
    } catch (err) {
      throw new Error("cannot set up per-uplink routing", { cause: err });
    }
    log.info("per-uplink routing installed", {
      uplinks: Object.fromEntries(
        [...routes].map(([id, r]) => [
          id,
          { sourceAddress: r.sourceAddress, gateway: r.gateway ?? null, table: r.table ?? null },
        ]),
      ),
    });
    const switcher = this.o.host.createSwitcher(config, routes);
    const applier = new DirectiveApplier({
      switcher,
      tunnels: this.o.host.createTunnelRestarter(config.tunnels),
      edgeAddress: async () => (await edge())[0]!,
      save: (s) => {
        this.saveState(s);
        // The routes may have just moved: report what the host really does.
        void this.refreshRoutedUplink();
      },
      log,
      now: this.now,
      onDriftRepaired: (d) =>
        this.drifts.push({
          at: d.at,
          routedUplink: d.routed.ipv4,
          routedUplink6: d.routed.ipv6,
          activeUplink: d.activeUplink,
          repairedInMs: Math.max(0, Math.round(d.repairedInMs)),
        }),
      initial: saved,
      retryDelay: (attempt) => backoffDelay(attempt, { baseMs: 1_000, maxMs: 60_000, jitter: 0.3 }, this.o.random),
    });
    this.mover = { switcher, applier };
    if (config.tunnels.backend === "pinned") this.pinReplicas(config.tunnels.replicas, routes);
  }

  private pinReplicas(
    replicas: Extract<AgentConfig["tunnels"], { backend: "pinned" }>["replicas"],
    routes: Map<string, UplinkRoute>,
  ): void {
    this.replicas = new ReplicaRestarts({
      replicas: new Map(Object.entries(replicas).map(([id, r]) => [id, this.o.host.createTunnelRestarter(r)])),
      log: this.o.log,
      now: this.now,
      onChange: () => this.status?.changed(),
      retryDelay: (n) => backoffDelay(n, { baseMs: 1_000, maxMs: 60_000, jitter: 0.3 }, this.o.random),
    });
    // What each replica must bind to (cloudflared --edge-bind-address): the per-uplink routing
    // above sends that source address out through its own uplink, whatever the default route.
    this.o.log.info("pinned tunnel replicas", {
      bindAddresses: Object.fromEntries([...routes].map(([id, r]) => [id, r.sourceAddress])),
    });
  }

  /** Pinned replicas are bound to their uplink's address: everything from it is theirs. */
  private pin(edge: string[]): Pin {
    if (this.config.tunnels.backend === "pinned") return "all";
    this.pinnedEdge = edge.join(" ");
    return { edge, port: edgePort(this.config.edge) };
  }

  /** The rules follow the edge's name to its current addresses. */
  private async keepPinCurrent(): Promise<void> {
    if (!this.edge || !this.routes || this.config.tunnels.backend === "pinned") return;
    try {
      const now = await this.edge();
      if (now.join(" ") === this.pinnedEdge) return;
      this.routes = await this.o.host.installUplinkRouting(this.config.uplinks, this.pin(now));
      this.o.log.info("per-uplink routing follows the edge's addresses", { edge: now });
    } catch (err) {
      this.o.log.warn("cannot bring the per-uplink routing up to date", { error: describeError(err) });
    }
  }

  protected replicaView(): StatusFile["replicas"] {
    return this.replicas?.view();
  }

  protected reconcilerState(): ReconcilerState {
    return this.mover?.applier.state ?? this.resumed;
  }

  protected uplinkPart(uplink: AgentConfig["uplinks"][number]): UplinkPart {
    const route = this.routes?.get(uplink.id);
    return {
      localAddress: route?.sourceAddress,
      gateway: route?.gateway,
      onContact: (at, downAfterMs) => this.replicas?.contact(uplink.id, at, downAfterMs ?? 3 * this.config.heartbeatMs),
      report: () => {
        const s = this.reconcilerState();
        const drifts = this.recentDrifts();
        return {
          appliedGeneration: s.appliedGeneration,
          tunnelGeneration: s.tunnelGeneration,
          routedUplink: this.routedUplink,
          ...(drifts.length ? { routeDrifts: drifts } : {}),
        };
      },
    };
  }

  private recentDrifts(): RouteDrift[] {
    const since = this.now() - DRIFT_REPORTED_MS;
    this.drifts = this.drifts.filter((d) => d.at >= since).slice(-DRIFTS_REPORTED);
    return this.drifts;
  }

  protected async started(): Promise<void> {
    await this.refreshRoutedUplink();
    // Level-triggered: every change of the kernel's routes is checked against the directive at
    // once, and a periodic read catches whatever the watch misses.
    if (this.config.switch.backend !== "none")
      this.stopWatchingRoutes = this.o.host.watchRoutes(() => {
        void this.refreshRoutedUplink();
        // A new SLAAC address or prefix comes with its prefix route: the IPv6 rules follow at once.
        void this.refreshIpv6();
      }, this.o.log);
    void this.keepPinCurrent();
    this.routedTimer = setInterval(() => {
      void this.refreshRoutedUplink();
      void this.keepPinCurrent();
    }, ROUTES_BACKSTOP_MS);
    this.routedTimer.unref();
    this.mover?.applier.start();
  }

  /** The IPv6 channels' rules (policy-routing6.ts), for the same port as IPv4's; a host that never had IPv6 is not touched. */
  protected async routeIpv6(paths: readonly (Ipv6Path | null)[], edge6: string | null): Promise<void> {
    if (!this.ipv6Routed && (edge6 === null || paths.every((p) => p === null))) return;
    this.ipv6Routed = true;
    const pin = edge6 === null ? null : { edge: [edge6], port: edgePort(this.config.edge) };
    await this.o.host.routeIpv6(this.config.uplinks, paths, pin);
  }

  protected onDirective(directive: NonNullable<DirectiveMessage["directive"]>): void {
    this.mover?.applier.offer(directive);
  }

  private async refreshRoutedUplink(): Promise<void> {
    if (!this.mover) return;
    try {
      const readAt = this.now();
      const routed = await this.mover.switcher.routed();
      const r = routed.ipv4;
      if (r !== this.routedUplink)
        this.o.log.info("host default route", { routedUplink: r, routedUplink6: routed.ipv6 });
      this.routedUplink = r;
      if (this.status) this.status.routedUplink = r;
      if (this.config.switch.backend !== "none") this.mover.applier.observeRoutes(routed, readAt);
    } catch (err) {
      this.o.log.warn("cannot read the host's default route", { error: describeError(err) });
    }
  }

  protected async tearDownHost(graceMs: number): Promise<void> {
    const { log } = this.o;
    if (this.routedTimer) clearInterval(this.routedTimer);
    this.stopWatchingRoutes?.();
    if (this.mover && !(await this.mover.applier.stop(graceMs)))
      log.warn("an operation was still running at shutdown; the next start resumes it");
    await this.replicas?.stop(graceMs);
    if (this.ipv6Routed)
      try {
        await this.o.host.unrouteIpv6(this.config.uplinks);
        log.info("per-uplink IPv6 routing removed");
      } catch (err) {
        log.error("cannot remove per-uplink IPv6 routing", { error: describeError(err) });
      }
    if (!this.routes) return;
    try {
      await this.o.host.removeUplinkRouting(this.routes);
      log.info("per-uplink routing removed");
    } catch (err) {
      log.error("cannot remove per-uplink routing", { error: describeError(err) });
    }
  }
}
