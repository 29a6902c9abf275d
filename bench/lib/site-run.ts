// Runs agents at their real pace: every stream heartbeats once per interval (over its WebSocket, or
// HTTP without one), staggered across the interval like independent hosts, with uplinks that can be cut. Used by the cost and sites benches.
import type { LoadAgent } from "./load-agent.ts";
import { streams } from "./load-agent.ts";

export class Pacer {
  /** Uplinks whose traffic is dropped, per site: a cut uplink, as its agents would see it. */
  readonly cut = new Set<string>();
  sent = 0;
  refused = 0;
  private timer: NodeJS.Timeout | null = null;
  private readonly errors: string[] = [];

  private readonly sites: { site: string; agents: LoadAgent[] }[];
  private readonly heartbeatMs: number;

  constructor(sites: { site: string; agents: LoadAgent[] }[], heartbeatMs: number) {
    this.sites = sites;
    this.heartbeatMs = heartbeatMs;
  }

  start(): void {
    const all = this.sites.flatMap(({ site, agents }) => streams(agents).map((s) => ({ ...s, site })));
    // One timer for all streams: each gets a fixed offset in the interval, so load is even.
    const started = performance.now();
    const next = all.map((_, i) => started + (i / all.length) * this.heartbeatMs);
    const tick = () => {
      const now = performance.now();
      all.forEach((s, i) => {
        if (next[i]! > now) return;
        const cut = (uplink: string) => this.cut.has(`${s.site}/${uplink}`);
        next[i]! += s.agent.intervalFor(s.uplink, this.heartbeatMs, cut);
        if (cut(s.uplink)) return;
        this.sent++;
        s.agent.heartbeat(s.uplink).catch((err: Error) => {
          this.refused++;
          if (this.errors.length < 5) this.errors.push(err.message);
        });
      });
      this.timer = setTimeout(tick, Math.max(1, Math.min(20, this.heartbeatMs / all.length)));
    };
    tick();
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  /** The first refusals seen, for a readable failure. */
  get firstErrors(): string[] {
    return this.errors;
  }
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
