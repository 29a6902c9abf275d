// Which uplink a server's traffic really leaves through, as "the internet" sees it: the server sends
// a UDP datagram to the edge's address every 20 ms and a listener there records each one's source
// (a router's public address, after NAT). Used for peers that leave no log of their own (VRRP,
// NetworkManager). The listener also answers NetworkManager's connectivity check over HTTP.
import type { ChildProcess } from "node:child_process";
import { createInterface } from "node:readline";
import { answered, type Netns } from "../../lab/netns.ts";
import { EDGE_ADDRESS } from "../../lab/topology.ts";

const PORT = 9999;
/** What the edge's HTTP answers on every path: NetworkManager's default expected `response`. */
export const CONNECTIVITY_RESPONSE = "NetworkManager is online";

const LISTENER = `
const out = (l) => process.stdout.write(l + "\\n");
const u = require("node:dgram").createSocket("udp4");
u.on("message", (_m, r) => out(Date.now() + " " + r.address));
const h = require("node:http").createServer((_q, res) => res.end(${JSON.stringify(CONNECTIVITY_RESPONSE)}));
u.bind(${PORT}, "${EDGE_ADDRESS}", () => h.listen(80, "${EDGE_ADDRESS}", () => out("ready")));
`;
// Unbound and unconnected: each datagram takes the route (and source address) of the moment.
const SENDER = `
const u = require("node:dgram").createSocket("udp4");
setInterval(() => u.send("x", ${PORT}, "${EDGE_ADDRESS}", () => {}), 20);
`;

export class PathProbe {
  private readonly seen: { at: number; from: string }[] = [];
  private readonly procs: ChildProcess[];

  private constructor(listener: ChildProcess, sender: ChildProcess) {
    this.procs = [listener, sender];
    createInterface({ input: listener.stdout! }).on("line", (l) => {
      const [at, from] = l.split(" ");
      if (from) this.seen.push({ at: Number(at), from });
    });
  }

  /** The listener on "the internet" (`inet`) and the sender on `server`; both die with their namespaces. */
  static async start(inet: Netns, server: Netns): Promise<PathProbe> {
    const listener = inet.spawn([process.execPath, "-e", LISTENER], { stdio: ["ignore", "pipe", "inherit"] });
    await answered(listener, null, "ready");
    const sender = server.spawn([process.execPath, "-e", SENDER], { stdio: "ignore" });
    return new PathProbe(listener, sender);
  }

  /**
   * Milliseconds from `since` to the first datagram of the run from `source` that is still
   * unbroken `holdMs` later: when the server's traffic moved to that uplink for good.
   */
  async movedTo(source: string, since: number, holdMs = 2_000, timeoutMs = 60_000): Promise<number> {
    for (;;) {
      const after = this.seen.filter((d) => d.at >= since);
      const lastOther = after.findLastIndex((d) => d.from !== source);
      const run = after.slice(lastOther + 1);
      if (run.length && run.at(-1)!.at - run[0]!.at >= holdMs) return run[0]!.at - since;
      if (Date.now() - since > timeoutMs) throw new Error(`the server's traffic did not move to ${source}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  stop(): void {
    for (const p of this.procs) p.kill("SIGKILL");
  }
}
