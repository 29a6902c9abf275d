// An uplink's path to the edge, seen the way dpinger sees a gateway: one probe a second (a TCP
// handshake to the edge, from the uplink's address), and over the last minute the share left
// unanswered and the median of the answers. Heartbeats cannot show loss themselves: TCP resends
// what is lost, so it shows as delay; a SYN left unanswered for 1 s is the kernel's own verdict (it
// resends the SYN then). A lost handshake counts only when the edge's answers around it are closer
// together than the site's downAfterMs: a silence the edge rides out is loss on a path that works
// (a link dropping out for a second or two, again and again), while a longer one is an outage the
// edge judges by silence, and must not leave the uplink looking lossy for a minute after it is back.
import { lookup } from "node:dns/promises";
import { isIP } from "node:net";
import type { PathQuality } from "#shared";
import { repeat } from "../lib/repeat.ts";
import { measureHandshake } from "./handshake.ts";

export const PATH_WINDOW_MS = 60_000;
export const LOST_AFTER_MS = 1_000;
/** One handshake a second whatever the heartbeat: enough samples in a minute to judge. */
export const SAMPLE_EVERY_MS = 1_000;

/** The samples of the last minute, and when the edge answered a heartbeat; pure. */
export class PathWindow {
  /** `lost`: for a handshake left unanswered, whether it counts, once the edge has answered after it. */
  private readonly samples: { at: number; ms: number | null; lost?: boolean }[] = [];
  private readonly contacts: number[] = [];
  /** The edge's downAfterMs, as it last said: a lost handshake in a shorter gap between its answers is loss. */
  private outageAfterMs: number;

  constructor(outageAfterMs: number) {
    this.outageAfterMs = outageAfterMs;
  }

  add(at: number, ms: number | null): void {
    this.samples.push({ at, ms });
    this.judge();
    this.prune(at);
  }

  /** The edge answered through this uplink at `at` (and told its downAfterMs). */
  contact(at: number, downAfterMs?: number): void {
    this.contacts.push(at);
    if (downAfterMs !== undefined) this.outageAfterMs = downAfterMs;
    this.judge();
    this.prune(at);
  }

  report(now: number): PathQuality | null {
    this.prune(now);
    const counted = this.samples.filter((s) => s.ms !== null || s.lost === true);
    if (!counted.length) return null;
    const answered = counted.flatMap((s) => (s.ms === null ? [] : [s.ms])).sort((a, b) => a - b);
    const median = answered.length ? answered[Math.floor((answered.length - 1) / 2)]! : null;
    // Lost over counted, not 1 − answered share: 2 of 10 must be 0.2 exactly, the default threshold.
    return { lossRatio: (counted.length - answered.length) / counted.length, rttMs: median, samples: counted.length };
  }

  /**
   * Judges each unanswered handshake once the edge has answered after it, by the gap between the
   * answers around it and the downAfterMs of that moment: a later policy does not rewrite the past.
   */
  private judge(): void {
    for (const s of this.samples) {
      if (s.ms !== null || s.lost !== undefined) continue;
      const after = this.contacts.find((c) => c >= s.at);
      if (after === undefined) continue;
      const before = this.contacts.findLast((c) => c <= s.at);
      s.lost = before !== undefined && after - before < this.outageAfterMs;
    }
  }

  private prune(now: number): void {
    const from = now - PATH_WINDOW_MS;
    while (this.samples.length && this.samples[0]!.at <= from) this.samples.shift();
    // The last contact before the window still vouches for its first samples.
    while (this.contacts.length > 1 && this.contacts[1]! <= from) this.contacts.shift();
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
  /** Sampling paused (a metered uplink standing by): the window empties, the report becomes null. */
  private paused = false;
  private readonly localAddress: string | undefined;
  private readonly now: () => number;

  /** `heartbeatMs`: until the edge tells its downAfterMs, taken as the default 3 heartbeats. */
  constructor(
    edge: string,
    heartbeatMs: number,
    localAddress?: string,
    now: () => number = Date.now,
    everyMs = SAMPLE_EVERY_MS,
  ) {
    const u = new URL(edge);
    this.host = u.hostname.replace(/^\[|\]$/g, "");
    this.port = Number(u.port) || (u.protocol === "https:" ? 443 : 80);
    this.everyMs = everyMs;
    this.localAddress = localAddress;
    this.now = now;
    this.window = new PathWindow(3 * heartbeatMs);
  }

  /** The edge answered a heartbeat through this uplink. */
  contact(at: number, downAfterMs?: number): void {
    this.window.contact(at, downAfterMs);
  }

  start(): void {
    if (!this.paused) this.stopSampling = repeat(() => this.sample(), this.everyMs);
  }

  stop(): void {
    this.stopSampling?.();
    this.stopSampling = null;
  }

  /** Pauses or resumes sampling; a sampler not yet started starts as this says. */
  pause(paused: boolean): void {
    if (paused === this.paused) return;
    const running = this.stopSampling !== null || this.paused;
    this.stop();
    this.paused = paused;
    if (running) this.start();
  }

  report(): PathQuality | null {
    return this.window.report(this.now());
  }

  private async sample(): Promise<void> {
    this.address ??= isIP(this.host) ? this.host : ((await lookup(this.host).catch(() => null))?.address ?? null);
    const at = this.now();
    const ms = this.address
      ? await measureHandshake(this.address, {
          port: this.port,
          localAddress: this.localAddress,
          timeoutMs: LOST_AFTER_MS,
        })
      : null;
    if (ms === null) this.address = null;
    this.window.add(at, ms);
  }
}
