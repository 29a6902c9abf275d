// Round trip to the uplink's router, measured with a TCP handshake: Node has no ICMP without a
// helper binary, and a router answers a SYN either way (accepted, or refused with a RST — both
// are one round trip). The edge shows it beside the RTT to the edge, which tells "the router
// is gone" from "the router is fine but its uplink is not".
import { Socket } from "node:net";

export interface GatewayRttOptions {
  localAddress?: string;
  /** 53: every small-office router runs a DNS forwarder; a closed port answers just as well. */
  port?: number;
  timeoutMs?: number;
}

/** One measurement: milliseconds, or null when the router did not answer in time. */
export function measureGatewayRtt(gateway: string, o: GatewayRttOptions = {}): Promise<number | null> {
  return new Promise((resolve) => {
    const started = performance.now();
    const socket = new Socket();
    const done = (answered: boolean) => {
      socket.destroy();
      resolve(answered ? Math.round((performance.now() - started) * 100) / 100 : null);
    };
    socket.setTimeout(o.timeoutMs ?? 1_000, () => done(false));
    socket.once("connect", () => done(true));
    // ECONNREFUSED is the router's RST: an answer. Anything else (unreachable, no route) is not.
    socket.once("error", (err: NodeJS.ErrnoException) => done(err.code === "ECONNREFUSED"));
    socket.connect({ host: gateway, port: o.port ?? 53, localAddress: o.localAddress });
  });
}

/** Measures every `everyMs` and keeps the latest figure for the next heartbeat. */
export class GatewayRtt {
  private timer: NodeJS.Timeout | null = null;
  private inFlight = false;
  private gw: string | null = null;
  latest: number | null = null;

  constructor(
    private readonly gateway: () => Promise<string | null>,
    private readonly everyMs: number,
    private readonly o: Omit<GatewayRttOptions, "timeoutMs"> = {},
  ) {}

  start(): void {
    void this.sample();
    this.timer = setInterval(() => void this.sample(), this.everyMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  private async sample(): Promise<void> {
    if (this.inFlight) return;
    this.inFlight = true;
    try {
      // Looked up once, and again after a miss (the router may have a new address).
      this.gw ??= await this.gateway().catch(() => null);
      this.latest = this.gw ? await measureGatewayRtt(this.gw, { ...this.o, timeoutMs: Math.min(2_000, this.everyMs) }) : null;
      if (this.latest === null) this.gw = null;
    } finally {
      this.inFlight = false;
    }
  }
}
