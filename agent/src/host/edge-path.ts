// An uplink's path to the edge, seen the way dpinger sees a gateway: one probe per heartbeat
// interval (a TCP handshake to the edge, from the uplink's address), and over the last minute the
// share left unanswered and the median of the answers. Heartbeats cannot show loss themselves: TCP
// resends what is lost, so it shows as delay; a SYN left unanswered for 1 s is the kernel's own
// verdict (it resends the SYN then). A lost handshake counts only when the edge answered heartbeats
// through the uplink both shortly before and shortly after it: loss on a path that works. One at
// the start or the end of an outage is the outage, which the edge judges by silence; it must not
// leave the uplink looking lossy for a minute after it is back.
import { lookup } from "node:dns/promises";
import { isIP } from "node:net";
import type { PathQuality } from "../../../shared/src/index.ts";
import { repeat } from "../lib/repeat.ts";
import { measureHandshake } from "./handshake.ts";

export const PATH_WINDOW_MS = 60_000;
export const LOST_AFTER_MS = 1_000;
/** One handshake a second whatever the heartbeat: enough samples in a minute to judge. */
export const SAMPLE_EVERY_MS = 1_000;

/** The samples of the last minute, and when the edge answered a heartbeat; pure. */
export class PathWindow {
  private readonly samples: { at: number; ms: number | null }[] = [];
  private readonly contacts: number[] = [];
  /** A lost handshake counts as loss when the edge answered within this much before it and after it. */
  private readonly contactSlackMs: number;

  constructor(contactSlackMs: number) {
    this.contactSlackMs = contactSlackMs;
  }

  add(at: number, ms: number | null): void {
    this.samples.push({ at, ms });
    this.prune(at);
  }

  /** The edge answered through this uplink at `at`. */
  contact(at: number): void {
    this.contacts.push(at);
    this.prune(at);
  }

  report(now: number): PathQuality | null {
    this.prune(now);
    const near = (at: number) => this.contacts.some((c) => c <= at && c >= at - this.contactSlackMs) && this.contacts.some((c) => c >= at && c <= at + this.contactSlackMs);
    const counted = this.samples.filter((s) => s.ms !== null || near(s.at));
    if (!counted.length) return null;
    const answered = counted.flatMap((s) => (s.ms === null ? [] : [s.ms])).sort((a, b) => a - b);
    const median = answered.length ? answered[Math.floor((answered.length - 1) / 2)]! : null;
    return { lossRatio: 1 - answered.length / counted.length, rttMs: median, samples: counted.length };
  }

  private prune(now: number): void {
    const from = now - PATH_WINDOW_MS;
    while (this.samples.length && this.samples[0]!.at <= from) this.samples.shift();
    // Contacts a little older than the window still vouch for its first samples.
    while (this.contacts.length && this.contacts[0]! <= from - this.contactSlackMs) this.contacts.shift();
  }
}

/** Probes the edge every `everyMs` through one uplink and keeps the window. */
export class EdgePath {
  private readonly window: PathWindow;
  private stopSampling: (() => void) | null = null;
  private readonly host: string;
  /** The edge's address, looked up once (and again after a miss): a lookup is no part of the path's round trip. */
  private address: string | null = null;
  private readonly port: number;
  private readonly everyMs: number;
  private readonly localAddress: string | undefined;
  private readonly now: () => number;

  /** `heartbeatMs`: how often the edge answers through this uplink, which vouches for the samples around it. */
  constructor(edge: string, heartbeatMs: number, localAddress?: string, now: () => number = Date.now, everyMs = SAMPLE_EVERY_MS) {
    const u = new URL(edge);
    this.host = u.hostname.replace(/^\[|\]$/g, "");
    this.port = Number(u.port) || (u.protocol === "https:" ? 443 : 80);
    this.everyMs = everyMs;
    this.localAddress = localAddress;
    this.now = now;
    this.window = new PathWindow(2 * Math.max(heartbeatMs, everyMs));
  }

  /** The edge answered a heartbeat through this uplink. */
  contact(at: number): void {
    this.window.contact(at);
  }

  start(): void {
    this.stopSampling = repeat(() => this.sample(), this.everyMs);
  }

  stop(): void {
    this.stopSampling?.();
    this.stopSampling = null;
  }

  report(): PathQuality | null {
    return this.window.report(this.now());
  }

  private async sample(): Promise<void> {
    this.address ??= isIP(this.host) ? this.host : ((await lookup(this.host).catch(() => null))?.address ?? null);
    const at = this.now();
    const ms = this.address ? await measureHandshake(this.address, { port: this.port, localAddress: this.localAddress, timeoutMs: LOST_AFTER_MS }) : null;
    if (ms === null) this.address = null;
    this.window.add(at, ms);
  }
}
