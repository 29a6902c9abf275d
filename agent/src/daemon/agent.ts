// The agent daemon, either role: ordered init (config → secret → saved state → the role's host set-up
// → channels, one per uplink, and one more over IPv6 where the uplink has it) and an orderly stop
// that undoes it. What differs by role — a server
// moves routes and restarts tunnels, a probe measures its uplink's path — lives in server-agent.ts
// and probe-agent.ts; `createAgent` picks one.
import type { AgentConfig } from "../config/schema.ts";
import { readSecret } from "../config/load.ts";
import { initialState, type ReconcilerState } from "../directive/reconciler.ts";
import { channelInterval } from "../edge/cadence.ts";
import { UplinkChannel, type ChannelOptions, type DirectiveMessage, type HeartbeatState } from "../edge/channel.ts";
import { EdgeClock } from "../edge/clock.ts";
import { isRevocation, refusalFix, withoutHttpAdvice, type Refusal } from "../edge/refusal.ts";
import { EdgeSigner } from "../edge/signer.ts";
import { GatewayRtt } from "../host/gateway-rtt.ts";
import { readInterfaceBytes } from "../host/interface-bytes.ts";
import type { Logger } from "../lib/log.ts";
import { readState, writeState, type StatusFile } from "../state/files.ts";
import { VERSION } from "../version.ts";
import type { Ipv6Path } from "../host/policy-routing6.ts";
import { edgeAddress6Resolver, edgeMayHaveIpv6 } from "./edge-address.ts";
import type { HostPort } from "./host-port.ts";
import { Ipv6Channels } from "./ipv6-channels.ts";
import { StatusWriter } from "./status-writer.ts";
import { UplinkBytesReport } from "./uplink-bytes.ts";
import { Witness } from "./witness.ts";

export interface AgentOptions {
  config: AgentConfig;
  host: HostPort;
  log: Logger;
  now?: () => number;
  random?: () => number;
  /** The agent cannot go on (it was revoked): the process should exit with code 2, which systemd does not restart. */
  onFatal?: (line: string) => void;
}

/** What a role adds to one uplink's channel. */
export interface UplinkPart {
  /** The source address the uplink's traffic leaves from (a server's per-uplink routing), if any. */
  localAddress?: string;
  /** The uplink's gateway when the role already knows it (a server's per-uplink routing). */
  gateway?: string | null;
  /** The role's fields of each heartbeat through this uplink. */
  report: () => Partial<HeartbeatState>;
  onContact?: (at: number, downAfterMs?: number) => void;
  /** This uplink's heartbeat interval changed (`siteMs`: the site's own). */
  onInterval?: (ms: number, siteMs: number) => void;
  start?: () => void;
  stop?: () => void;
}

/** How often each uplink's IPv6 address and route are read even when no route change says so. */
const IPV6_BACKSTOP_MS = 5_000;

export abstract class Agent {
  protected readonly o: AgentOptions;
  protected readonly now: () => number;
  protected status: StatusWriter | null = null;
  private readonly clock: EdgeClock;
  private readonly channels: UplinkChannel[] = [];
  private readonly parts: UplinkPart[] = [];
  private readonly gatewayRtts: GatewayRtt[] = [];
  private witness: Witness | null = null;
  private ipv6: Ipv6Channels | null = null;
  private ipv6Timer: NodeJS.Timeout | null = null;
  private seq = 0;
  /** The edge has accepted this agent since it started: an unknown_agent refusal after that means revoked. */
  private accepted = false;
  private readonly refusalsLogged = new Set<string>();
  /** The site's heartbeat interval: the config's until the edge sends the site's. */
  private heartbeatMs: number;
  /** Per-uplink intervals the edge sent (a metered uplink standing by is heartbeated slowly). */
  private assigned: Record<string, number> = {};
  private readonly intervals = new Map<string, number>();
  private readonly lastContact = new Map<string, number>();
  private uplinkBytes: UplinkBytesReport | null = null;
  private retimer: NodeJS.Timeout | null = null;

  constructor(o: AgentOptions) {
    this.o = o;
    this.now = o.now ?? Date.now;
    this.clock = new EdgeClock(this.now);
    this.heartbeatMs = o.config.heartbeatMs;
  }

  protected get config(): AgentConfig {
    return this.o.config;
  }

  /** Sets up the host for this role, starting from the saved state. */
  protected abstract setUpHost(saved: ReconcilerState): Promise<void>;
  /** The role's view of the directive and what it has done about it (status file, heartbeats). */
  protected abstract reconcilerState(): ReconcilerState;
  protected abstract onDirective(directive: NonNullable<DirectiveMessage["directive"]>): void;
  protected abstract uplinkPart(uplink: AgentConfig["uplinks"][number]): UplinkPart;
  /** Pinned tunnel replicas, for the status file (a server with `tunnels.backend: pinned`). */
  protected replicaView(): StatusFile["replicas"] {
    return undefined;
  }
  /** Once the status file is being written: the role's own readings of the host. */
  protected async started(): Promise<void> {}
  /** Routes each uplink's IPv6 path before its channel uses it (a server's rules); a probe routes nothing. */
  protected async routeIpv6(_paths: readonly (Ipv6Path | null)[], _edge6: string | null): Promise<void> {}
  /** Undoes `setUpHost`, letting an operation in flight finish within `graceMs`. */
  protected abstract tearDownHost(graceMs: number): Promise<void>;

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
    let resumed = initialState();
    if (saved.ok) {
      resumed = initialState(saved.value);
      log.info("resumed saved state", {
        appliedGeneration: saved.value.appliedGeneration,
        tunnelGeneration: saved.value.tunnelGeneration,
        directive: saved.value.directive,
      });
    } else if (!saved.missing) log.warn("ignoring the state file", { error: saved.error });

    // 3. The role's host set-up, then the status file.
    await this.setUpHost(resumed);
    this.status = new StatusWriter(
      config,
      {
        reconciler: () => this.reconcilerState(),
        clockOffsetMs: () => this.clock.offset,
        replicas: () => this.replicaView(),
      },
      log,
      this.now,
    );
    const parts = config.uplinks.map((u) => this.uplinkPart(u));
    for (const [i, u] of config.uplinks.entries()) this.status.setLocalAddress(u.id, parts[i]?.localAddress ?? null);
    this.uplinkBytes = new UplinkBytesReport(config.uplinks, (iface) => readInterfaceBytes(iface), this.now);
    this.status.start();
    await this.started();

    // 4. Channels, one per uplink. Until the edge answers, routes stay as they are.
    for (const [i, u] of config.uplinks.entries()) {
      const part = parts[i]!;
      this.parts.push(part);
      const gatewayRtt = new GatewayRtt(
        async () => part.gateway ?? (await this.o.host.uplinkGateway(u, i)),
        Math.max(1_000, config.heartbeatMs),
        { localAddress: part.localAddress },
      );
      this.gatewayRtts.push(gatewayRtt);
      this.channels.push(
        new UplinkChannel({
          ...this.channelBase(signer, i, gatewayRtt),
          localAddress: part.localAddress,
          family: 4,
          onContact: (uplink, c) => {
            this.contact(uplink, c);
            this.lastContact.set(uplink, c.at);
            this.status?.contact(uplink, c);
            // The uplink answers again: its IPv6 channel need not wait out its backoff.
            this.ipv6?.channel(uplink)?.reconnectNow();
            part.onContact?.(c.at, c.downAfterMs);
          },
          onState: (uplink, s) => this.status?.channelState(uplink, s),
          onUnanswered: (uplink) => this.witness?.unanswered(uplink),
        }),
      );
    }
    this.witness = new Witness(
      this.channels.map((c, i) => ({ uplink: config.uplinks[i]!.id, answers: c.answers, beatNow: () => c.beatNow() })),
    );
    for (const g of this.gatewayRtts) g.start();
    for (const p of this.parts) p.start?.();
    for (const ch of this.channels) ch.start();
    this.startIpv6(signer);
    // The active uplink's channel going unanswered speeds the others up: checked twice a second.
    this.retimer = setInterval(() => this.retime(), 500);
    this.retimer.unref();
    log.info("running", { heartbeatMs: config.heartbeatMs });
  }

  /** What every channel through uplink `i` shares, whichever its family. */
  private channelBase(signer: EdgeSigner, i: number, gatewayRtt: GatewayRtt): ChannelOptions {
    const { config, log } = this.o;
    const u = config.uplinks[i]!;
    const part = this.parts[i]!;
    return {
      edge: config.edge,
      site: config.site,
      uplink: u.id,
      version: VERSION,
      heartbeatMs: this.intervals.get(u.id) ?? config.heartbeatMs,
      signer,
      clock: this.clock,
      log,
      nextSeq: () => this.seq++,
      state: () => {
        const s = this.reconcilerState();
        const unanswered = this.witness?.reportFor(u.id) ?? [];
        return {
          ...(unanswered.length ? { unanswered } : {}),
          // Not before the uplink heard the edge: a report it drops unasked would delay the baseline.
          ...(this.lastContact.has(u.id) ? this.uplinkBytes?.for(u.id, s.directive?.activeUplink ?? null) : {}),
          appliedGeneration: null,
          tunnelGeneration: null,
          lastError: s.lastError,
          rttGatewayMs: gatewayRtt.latest,
          clockOffsetMs: this.clock.synced ? this.clock.offset : null,
          ...part.report(),
        };
      },
      onDirective: (m) => {
        if (m.directive) this.onDirective(m.directive);
      },
      onContact: (uplink, c) => this.contact(uplink, c),
      onRefused: (uplink, r) => this.onRefused(uplink, r),
      random: this.o.random,
      localNow: this.now,
    };
  }

  /** The edge answered, over either family: it knows this agent, and its answer sets the intervals. */
  private contact(_uplink: string, c: Parameters<ChannelOptions["onContact"]>[1]): void {
    this.accepted = true;
    if (c.heartbeatMs !== undefined) this.adoptHeartbeat(c.heartbeatMs, c.uplinkHeartbeatMs ?? {});
  }

  /**
   * IPv6 channels: through each uplink that has IPv6, at its IPv4 channel's interval. Their answers
   * and directives count like any other; their silence is no witness against the uplink (that is
   * the IPv4 channel's, which decides) and is not the status file's channel state.
   */
  private startIpv6(signer: EdgeSigner): void {
    const { config, log } = this.o;
    // Nothing to read on the host, every 5 s, for an edge that cannot be reached over IPv6.
    if (!edgeMayHaveIpv6(config.edge)) return;
    this.ipv6 = new Ipv6Channels({
      uplinks: config.uplinks,
      read: (u) => this.o.host.uplinkIpv6(u),
      edge6: edgeAddress6Resolver(config.edge, this.now),
      route: (paths, edge6) => this.routeIpv6(paths, edge6),
      open: (i, source) => {
        const uplink = config.uplinks[i]!.id;
        this.status?.ipv6Channel(uplink, source);
        const ch = new UplinkChannel({
          ...this.channelBase(signer, i, this.gatewayRtts[i]!),
          localAddress: source,
          family: 6,
          onContact: (_, c) => {
            this.contact(uplink, c);
            this.status?.contact6(uplink, c);
          },
        });
        ch.start();
        return ch;
      },
      closed: (i) => this.status?.ipv6Channel(config.uplinks[i]!.id, null),
      log,
      now: this.now,
    });
    void this.refreshIpv6();
    this.ipv6Timer = setInterval(() => void this.refreshIpv6(), IPV6_BACKSTOP_MS);
    this.ipv6Timer.unref();
  }

  /** Reads each uplink's IPv6 again (a role calls it when the host's routes change). */
  protected refreshIpv6(): Promise<void> {
    return this.ipv6?.refresh() ?? Promise.resolve();
  }

  /** Writes the state file; a failure is logged, the agent goes on. */
  protected saveState(s: ReconcilerState): void {
    writeState(this.config.stateDir, {
      directive: s.directive,
      appliedGeneration: s.appliedGeneration,
      tunnelGeneration: s.tunnelGeneration,
      lastError: s.lastError,
      savedAt: this.now(),
    });
    this.status?.changed();
  }

  /** The site's policy sets the interval of every channel: one source of timing for edge and agents. */
  private adoptHeartbeat(ms: number, perUplink: Record<string, number>): void {
    if (ms !== this.heartbeatMs)
      this.o.log.info("heartbeat interval from the site's policy", { fromMs: this.heartbeatMs, toMs: ms });
    this.heartbeatMs = ms;
    this.assigned = perUplink;
    this.retime();
  }

  /** Each channel at its interval now (edge/cadence.ts). */
  private retime(): void {
    const uplinks = this.config.uplinks.map((u) => u.id);
    const input = {
      siteMs: this.heartbeatMs,
      assigned: this.assigned,
      active: this.reconcilerState().directive?.activeUplink ?? null,
      channels: uplinks,
      lastContact: this.lastContact,
      now: this.now(),
    };
    for (const [i, uplink] of uplinks.entries()) {
      const ms = channelInterval(uplink, input);
      const was = this.intervals.get(uplink) ?? this.config.heartbeatMs;
      if (ms === was) continue;
      this.intervals.set(uplink, ms);
      this.o.log.info("heartbeat interval", { uplink, fromMs: was, toMs: ms });
      this.channels[i]?.setHeartbeat(ms);
      this.ipv6?.channel(uplink)?.setHeartbeat(ms);
      this.parts[i]?.onInterval?.(ms, this.heartbeatMs);
    }
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

  /** Close channels, let an operation in flight finish (briefly), undo the host set-up. */
  async stop(graceMs = 5_000): Promise<void> {
    if (this.retimer) clearInterval(this.retimer);
    if (this.ipv6Timer) clearInterval(this.ipv6Timer);
    await this.ipv6?.stop();
    for (const g of this.gatewayRtts) g.stop();
    for (const p of this.parts) p.stop?.();
    this.witness?.stop();
    await Promise.all(this.channels.map((c) => c.stop()));
    await this.tearDownHost(graceMs);
    this.status?.stop();
  }
}
