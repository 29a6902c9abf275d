// The agent daemon: ordered init (config → secret → saved state → host routing → channels), and
// an orderly stop that undoes what init set up.
import type { AgentConfig } from "../config/schema.ts";
import { readSecret } from "../config/load.ts";
import { DirectiveApplier, type Switcher } from "../directive/applier.ts";
import { initialState, type ReconcilerState } from "../directive/reconciler.ts";
import { UplinkChannel, type DirectiveMessage } from "../edge/channel.ts";
import { EdgeClock } from "../edge/clock.ts";
import { isRevocation, refusalFix, withoutHttpAdvice, type Refusal } from "../edge/refusal.ts";
import { EdgeSigner } from "../edge/signer.ts";
import { EdgePath } from "../host/edge-path.ts";
import { GatewayRtt } from "../host/gateway-rtt.ts";
import { backoffDelay } from "#shared";
import { describeError } from "../lib/errors.ts";
import type { Logger } from "../lib/log.ts";
import { readState, writeState } from "../state/files.ts";
import { VERSION } from "../version.ts";
import { edgeAddressResolver } from "./edge-address.ts";
import type { HostPort, UplinkRoute } from "./host-port.ts";
import { StatusWriter } from "./status-writer.ts";

/** How often the host's routes are read even when the watch reports nothing. */
const ROUTES_BACKSTOP_MS = 5_000;

export interface AgentOptions {
  config: AgentConfig;
  host: HostPort;
  log: Logger;
  now?: () => number;
  random?: () => number;
  /** The agent cannot go on (it was revoked): the process should exit with code 2, which systemd does not restart. */
  onFatal?: (line: string) => void;
}

export class Agent {
  private readonly clock: EdgeClock;
  private readonly channels: UplinkChannel[] = [];
  private readonly gatewayRtts: GatewayRtt[] = [];
  private readonly edgePaths: EdgePath[] = [];
  private routes: Map<string, UplinkRoute> | null = null;
  private applier: DirectiveApplier | null = null;
  private status: StatusWriter | null = null;
  private switcher: Switcher | null = null;
  private routedTimer: NodeJS.Timeout | null = null;
  private stopWatchingRoutes: (() => void) | null = null;
  private routedUplink: string | null = null;
  private seq = 0;
  /** The edge has accepted this agent since it started: an unknown_agent refusal after that means revoked. */
  private accepted = false;
  private readonly refusalsLogged = new Set<string>();
  /** The heartbeat interval in use: the config's until the edge sends the site's. */
  private heartbeatMs: number;
  /** A probe records directives but applies nothing: it has no routes to move. */
  private observed: ReconcilerState = initialState();
  private readonly now: () => number;

  private readonly o: AgentOptions;

  constructor(o: AgentOptions) {
    this.o = o;
    this.now = o.now ?? Date.now;
    this.clock = new EdgeClock(this.now);
    this.heartbeatMs = o.config.heartbeatMs;
  }

  private get config() {
    return this.o.config;
  }

  private reconcilerState(): ReconcilerState {
    return this.applier?.state ?? this.observed;
  }

  async init(): Promise<void> {
    const { config, log } = this.o;
    log.info("starting", {
      version: VERSION,
      agent: config.agent,
      site: config.site,
      role: config.role,
      edge: config.edge,
      uplinks: config.uplinks.map((u) => u.id),
    });

    // 1. Secret → signing key (the secret itself is not kept).
    const signer = await EdgeSigner.fromSecret(config.site, config.agent, readSecret(config.secretFile));

    // 2. Saved state: a restart resumes where the last run stopped.
    const saved = readState(config.stateDir);
    if (saved.ok) {
      this.observed = initialState(saved.value);
      log.info("resumed saved state", {
        appliedGeneration: saved.value.appliedGeneration,
        tunnelGeneration: saved.value.tunnelGeneration,
        directive: saved.value.directive,
      });
    } else if (!saved.missing) log.warn("ignoring the state file", { error: saved.error });
    const save = (s: ReconcilerState) => {
      writeState(config.stateDir, {
        directive: s.directive,
        appliedGeneration: s.appliedGeneration,
        tunnelGeneration: s.tunnelGeneration,
        lastError: s.lastError,
        savedAt: this.now(),
      });
      this.status?.changed();
      // The routes may have just moved: report what the host really does.
      void this.refreshRoutedUplink();
    };

    // 3. Host: per-uplink policy routing (server agents send through every uplink), switcher, tunnels.
    if (config.role === "server") {
      try {
        this.routes = await this.o.host.installUplinkRouting(config.uplinks);
      } catch (err) {
        throw new Error("cannot set up per-uplink routing", { cause: err });
      }
      log.info("per-uplink routing installed", {
        uplinks: Object.fromEntries(
          [...this.routes].map(([id, r]) => [
            id,
            { sourceAddress: r.sourceAddress, gateway: r.gateway ?? null, table: r.table ?? null },
          ]),
        ),
      });
      this.switcher = this.o.host.createSwitcher(config, this.routes, log);
      this.applier = new DirectiveApplier({
        switcher: this.switcher,
        tunnels: this.o.host.createTunnelRestarter(config.tunnels),
        edgeAddress: edgeAddressResolver(config.edge),
        save,
        log,
        now: this.now,
        initial: this.observed,
        retryDelay: (attempt) => backoffDelay(attempt, { baseMs: 1_000, maxMs: 60_000, jitter: 0.3 }, this.o.random),
      });
    }

    this.status = new StatusWriter(
      config,
      { reconciler: () => this.reconcilerState(), clockOffsetMs: () => this.clock.offset },
      log,
      this.now,
    );
    for (const u of config.uplinks) this.status.setLocalAddress(u.id, this.routes?.get(u.id)?.sourceAddress ?? null);
    this.status.start();
    await this.refreshRoutedUplink();
    if (this.switcher) {
      // Level-triggered: every change of the kernel's routes is checked against the directive at
      // once, and a periodic read catches whatever the watch misses.
      if (config.switch.backend !== "none")
        this.stopWatchingRoutes = this.o.host.watchRoutes(() => void this.refreshRoutedUplink(), log);
      this.routedTimer = setInterval(() => void this.refreshRoutedUplink(), ROUTES_BACKSTOP_MS);
      this.routedTimer.unref();
    }

    // 4. Channels, one per uplink. Until the edge answers, routes stay as they are.
    for (const [i, u] of config.uplinks.entries()) {
      const route = this.routes?.get(u.id);
      const gatewayRtt = new GatewayRtt(
        async () => route?.gateway ?? (await this.o.host.uplinkGateway(u, i)),
        Math.max(1_000, config.heartbeatMs),
        { localAddress: route?.sourceAddress },
      );
      this.gatewayRtts.push(gatewayRtt);
      // A probe is its uplink's reference: it alone measures the path's loss and latency.
      const edgePath =
        config.role === "probe" ? new EdgePath(config.edge, config.heartbeatMs, route?.sourceAddress, this.now) : null;
      if (edgePath) this.edgePaths.push(edgePath);
      const ch = new UplinkChannel({
        edge: config.edge,
        site: config.site,
        uplink: u.id,
        version: VERSION,
        localAddress: route?.sourceAddress,
        heartbeatMs: config.heartbeatMs,
        signer,
        clock: this.clock,
        log,
        nextSeq: () => this.seq++,
        state: () => {
          const s = this.reconcilerState();
          return {
            appliedGeneration: config.role === "server" ? s.appliedGeneration : null,
            tunnelGeneration: config.role === "server" ? s.tunnelGeneration : null,
            lastError: s.lastError,
            rttGatewayMs: gatewayRtt.latest,
            clockOffsetMs: this.clock.synced ? this.clock.offset : null,
            ...(edgePath ? { path: edgePath.report() } : {}),
            ...(config.role === "server" ? { routedUplink: this.routedUplink } : {}),
          };
        },
        onDirective: (m) => this.onDirective(m),
        onContact: (uplink, c) => {
          this.accepted = true;
          if (c.heartbeatMs !== undefined) this.adoptHeartbeat(c.heartbeatMs);
          this.status?.contact(uplink, c);
          edgePath?.contact(c.at, c.downAfterMs);
        },
        onState: (uplink, s) => this.status?.channelState(uplink, s),
        onRefused: (uplink, r) => this.onRefused(uplink, r),
        random: this.o.random,
        localNow: this.now,
      });
      this.channels.push(ch);
    }
    this.applier?.start();
    for (const g of this.gatewayRtts) g.start();
    for (const p of this.edgePaths) p.start();
    for (const ch of this.channels) ch.start();
    log.info("running", { heartbeatMs: config.heartbeatMs });
  }

  private onDirective(m: DirectiveMessage): void {
    if (!m.directive) return;
    if (this.applier) {
      this.applier.offer(m.directive);
      return;
    }
    const cur = this.observed.directive;
    if (cur && cur.generation > m.directive.generation) return;
    if (cur && cur.generation === m.directive.generation && cur.activeUplink === m.directive.activeUplink) return;
    this.observed = { ...this.observed, directive: m.directive };
    this.o.log.info("new directive (probe: nothing to apply)", { ...m.directive });
    try {
      writeState(this.config.stateDir, {
        directive: m.directive,
        appliedGeneration: null,
        tunnelGeneration: null,
        lastError: null,
        savedAt: this.now(),
      });
    } catch (err) {
      this.o.log.error("cannot write the state file", { error: describeError(err) });
    }
    this.status?.changed();
  }

  /** The site's policy sets the interval of every channel: one source of timing for edge and agents. */
  private adoptHeartbeat(ms: number): void {
    if (ms === this.heartbeatMs) return;
    this.o.log.info("heartbeat interval from the site's policy", { fromMs: this.heartbeatMs, toMs: ms });
    this.heartbeatMs = ms;
    for (const ch of this.channels) ch.setHeartbeat(ms);
  }

  /** A refusal caused by this agent's setup: said once per reason at error level, with the fix. */
  private onRefused(uplink: string, r: Refusal): void {
    const fix = refusalFix(r, this.config);
    if (!fix) return;
    const message = withoutHttpAdvice(r.message);
    this.status?.refusal({ code: r.code, message, fix, at: this.now() });
    if (this.accepted && isRevocation(r)) {
      const line = `agent ${this.config.agent} was revoked in site ${this.config.site} (the edge accepted it earlier, now it does not know it): stopping; ${fix}`;
      this.o.log.error(line, { uplink, code: r.code });
      this.o.onFatal?.(line);
      return;
    }
    if (this.refusalsLogged.has(r.code)) return;
    this.refusalsLogged.add(r.code);
    this.o.log.error(`the edge refuses this agent (${r.code}: ${message}); fix: ${fix}`, { uplink, code: r.code });
  }

  private async refreshRoutedUplink(): Promise<void> {
    if (!this.switcher) return;
    try {
      const readAt = this.now();
      const routed = await this.switcher.routed();
      const r = routed.ipv4;
      if (r !== this.routedUplink)
        this.o.log.info("host default route", { routedUplink: r, routedUplink6: routed.ipv6 });
      this.routedUplink = r;
      if (this.status) this.status.routedUplink = r;
      if (this.config.switch.backend !== "none") this.applier?.observeRoutes(routed, readAt);
    } catch (err) {
      this.o.log.warn("cannot read the host's default route", { error: describeError(err) });
    }
  }

  /** Close channels, let an operation in flight finish (briefly), remove policy routing. */
  async stop(graceMs = 5_000): Promise<void> {
    const { log } = this.o;
    if (this.routedTimer) clearInterval(this.routedTimer);
    this.stopWatchingRoutes?.();
    for (const g of this.gatewayRtts) g.stop();
    for (const p of this.edgePaths) p.stop();
    await Promise.all(this.channels.map((c) => c.stop()));
    if (this.applier && !(await this.applier.stop(graceMs)))
      log.warn("an operation was still running at shutdown; the next start resumes it");
    if (this.routes) {
      try {
        await this.o.host.removeUplinkRouting(this.routes);
        log.info("per-uplink routing removed");
      } catch (err) {
        log.error("cannot remove per-uplink routing", { error: describeError(err) });
      }
    }
    this.status?.stop();
  }
}
