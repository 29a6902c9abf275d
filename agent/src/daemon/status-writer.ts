// Keeps status.json current: at once on a change that matters, otherwise at most every few seconds.
import type { AgentConfig } from "../config/schema.ts";
import type { ReconcilerState } from "../directive/reconciler.ts";
import type { Transport } from "../edge/channel.ts";
import { describeError } from "../lib/errors.ts";
import type { Logger } from "../lib/log.ts";
import { writeStatus, type StatusFile, type UplinkView } from "../state/files.ts";

/** What the status file reports besides the channels. */
export interface StatusSource {
  reconciler: () => ReconcilerState;
  clockOffsetMs: () => number;
  /** Pinned tunnel replicas, on a server with `tunnels.backend: pinned`. */
  replicas?: () => StatusFile["replicas"];
}

export class StatusWriter {
  private readonly uplinks: Record<string, UplinkView> = {};
  private dirty = true;
  private timer: NodeJS.Timeout | null = null;
  private readonly startedAt: number;
  routedUplink: string | null = null;
  private refused: StatusFile["refusal"] = null;

  private readonly config: AgentConfig;
  private readonly source: StatusSource;
  private readonly log: Logger;
  private readonly now: () => number;
  private readonly everyMs: number;

  constructor(config: AgentConfig, source: StatusSource, log: Logger, now: () => number = Date.now, everyMs = 5_000) {
    this.config = config;
    this.source = source;
    this.log = log;
    this.now = now;
    this.everyMs = everyMs;
    this.startedAt = now();
    for (const u of config.uplinks)
      this.uplinks[u.id] = {
        transport: null,
        lastContactAt: null,
        rttMs: null,
        error: null,
        localAddress: null,
        ipv6: null,
      };
  }

  start(): void {
    this.flush();
    this.timer = setInterval(() => this.dirty && this.flush(), this.everyMs);
    this.timer.unref();
  }

  setLocalAddress(uplink: string, address: string | null): void {
    this.uplinks[uplink]!.localAddress = address;
    this.dirty = true;
  }

  contact(uplink: string, c: { transport: Transport; rttMs: number | null; at: number }): void {
    const u = this.uplinks[uplink]!;
    const first = u.lastContactAt === null || u.transport !== c.transport;
    Object.assign(u, { transport: c.transport, lastContactAt: c.at, rttMs: c.rttMs ?? u.rttMs, error: null });
    const cleared = this.refused !== null;
    this.refused = null;
    this.dirty = true;
    if (first || cleared) this.flush();
  }

  /** The uplink's IPv6 channel opened (bound to `source`), rebound, or closed (null). */
  ipv6Channel(uplink: string, source: string | null): void {
    this.uplinks[uplink]!.ipv6 =
      source === null ? null : { localAddress: source, transport: null, lastContactAt: null, rttMs: null };
    this.flush();
  }

  /** An answer over the uplink's IPv6 channel: its own line, apart from the IPv4 channel that decides. */
  contact6(uplink: string, c: { transport: Transport; rttMs: number | null; at: number }): void {
    const v = this.uplinks[uplink]!.ipv6;
    if (!v) return;
    const first = v.lastContactAt === null || v.transport !== c.transport;
    Object.assign(v, { transport: c.transport, lastContactAt: c.at, rttMs: c.rttMs ?? v.rttMs });
    this.dirty = true;
    if (first) this.flush();
  }

  /** The edge's latest refusal of this agent's setup; an answer from the edge clears it. */
  refusal(r: NonNullable<StatusFile["refusal"]>): void {
    const same = this.refused?.code === r.code && this.refused.message === r.message;
    this.refused = r;
    if (!same) this.flush();
  }

  channelState(uplink: string, s: { transport: Transport | null; error: string | null }): void {
    Object.assign(this.uplinks[uplink]!, s);
    this.flush();
  }

  changed(): void {
    this.flush();
  }

  flush(stoppedAt: number | null = null): void {
    const r = this.source.reconciler();
    try {
      writeStatus(this.config.stateDir, {
        pid: process.pid,
        agent: this.config.agent,
        site: this.config.site,
        role: this.config.role,
        edge: this.config.edge,
        startedAt: this.startedAt,
        updatedAt: this.now(),
        stoppedAt,
        clockOffsetMs: this.source.clockOffsetMs(),
        directive: r.directive,
        appliedGeneration: r.appliedGeneration,
        tunnelGeneration: r.tunnelGeneration,
        lastError: r.lastError,
        routedUplink: this.routedUplink,
        uplinks: this.uplinks,
        refusal: this.refused,
        ...(this.source.replicas ? { replicas: this.source.replicas() } : {}),
      });
      this.dirty = false;
    } catch (err) {
      this.log.error("cannot write the status file", { error: describeError(err) });
    }
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    for (const u of Object.values(this.uplinks)) u.transport = null;
    this.flush(this.now());
  }
}
