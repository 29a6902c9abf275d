// One TCP handshake, timed: how the agent measures a round trip without ICMP (Node has none without
// a helper binary). A refused connection is an answer too: the RST is one round trip.
import { Socket } from "node:net";

export interface HandshakeOptions {
  port: number;
  /** Source address to bind: the uplink's, so policy routing sends the SYN out through it. */
  localAddress?: string;
  timeoutMs: number;
}

/** Milliseconds until the SYN was answered, or null when nothing answered in time. */
export function measureHandshake(host: string, o: HandshakeOptions): Promise<number | null> {
  return new Promise((resolve) => {
    const started = performance.now();
    const socket = new Socket();
    const done = (answered: boolean) => {
      socket.destroy();
      resolve(answered ? Math.round((performance.now() - started) * 100) / 100 : null);
    };
    socket.setTimeout(o.timeoutMs, () => done(false));
    socket.once("connect", () => done(true));
    // ECONNREFUSED is the far end's RST: an answer. Anything else (unreachable, no route) is not.
    socket.once("error", (err: NodeJS.ErrnoException) => done(err.code === "ECONNREFUSED"));
    socket.connect({ host, port: o.port, localAddress: o.localAddress });
  });
}
