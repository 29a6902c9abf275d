// Round trip to the uplink's router, measured with a TCP handshake: Node has no ICMP without a
// helper binary, and a router answers a SYN either way (accepted, or refused with a RST — both
// are one round trip). The edge shows it beside the RTT to the edge, which tells "the router
// is gone" from "the router is fine but its uplink is not".
import { repeat } from "../lib/repeat.ts";
import { measureHandshake } from "./handshake.ts";

export interface GatewayRttOptions {
  localAddress?: string;
  /** 53: every small-office router runs a DNS forwarder; a closed port answers just as well. */
  port?: number;
}

/** Measures every `everyMs` and keeps the latest figure for the next heartbeat. */
export class GatewayRtt {
  private stopSampling: (() => void) | null = null;
  private gw: string | null = null;
  latest: number | null = null;

  private readonly gateway: () => Promise<string | null>;
  private readonly everyMs: number;
  private readonly o: GatewayRttOptions;

  constructor(gateway: () => Promise<string | null>, everyMs: number, o: GatewayRttOptions = {}) {
    this.gateway = gateway;
    this.everyMs = everyMs;
    this.o = o;
  }

  start(): void {
    this.stopSampling = repeat(() => this.sample(), this.everyMs, { now: true });
  }

  stop(): void {
    this.stopSampling?.();
    this.stopSampling = null;
  }

  private async sample(): Promise<void> {
    // Looked up once, and again after a miss (the router may have a new address).
    this.gw ??= await this.gateway().catch(() => null);
    this.latest = this.gw
      ? await measureHandshake(this.gw, { port: 53, ...this.o, timeoutMs: Math.min(2_000, this.everyMs) })
      : null;
    if (this.latest === null) this.gw = null;
  }
}
