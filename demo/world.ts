// What the demo script drives: a site whose primary uplink it can cut and restore, and whose
// hosts tell what they did. Two kinds: the lab (real hosts in network namespaces, root on Linux)
// and a simulation (the real edge, simulated hosts).
import type { SiteEvent, SiteStatus } from "#shared";

export interface DemoPolicy {
  heartbeatMs: number;
  downAfterMs: number;
  failbackAfterMs: number;
  minDwellMs: number;
}

export interface DemoWorld {
  /** Two lines on what is real and what is not. */
  banner: string;
  /** The edge as this machine reaches it. */
  edgeUrl: string;
  site: string;
  servers: string[];
  status(): Promise<SiteStatus>;
  events(): Promise<SiteEvent[]>;
  /** Uplink 1 loses the internet; its router and LAN stay up. */
  cut(): Promise<void>;
  restore(): Promise<void>;
  /** What happened on the hosts since the last call, one line each. */
  news(): string[];
  stop(): Promise<void>;
}
