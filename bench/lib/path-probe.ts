// Which uplink each server's traffic really leaves through, as "the internet" sees it: every server
// sends a UDP datagram naming itself to the edge's address every 20 ms and a listener there records
// each one's source (a router's public address, after NAT). The one vantage bench:peers times every
// contender from, wanwatch included. The listener can also answer NetworkManager's connectivity
// check over HTTP (not where the real edge already serves HTTP).
import type { ChildProcess } from "node:child_process";
import { createInterface } from "node:readline";
import { answered, type Netns } from "../../lab/netns.ts";
import { EDGE_ADDRESS } from "../../lab/topology.ts";

const PORT = 9999;
/** What the edge's HTTP answers on every path: NetworkManager's default expected `response`. */
export const CONNECTIVITY_RESPONSE = "NetworkManager is online";

const listener = (http: boolean) => `
const out = (l) => process.stdout.write(l + "\\n");
const u = require("node:dgram").createSocket("udp4");
u.on("message", (m, r) => out(Date.now() + " " + r.address + " " + m));
const ready = () => out("ready");
${
  http
    ? `const h = require("node:http").createServer((_q, res) => res.end(${JSON.stringify(CONNECTIVITY_RESPONSE)}));
u.bind(${PORT}, "${EDGE_ADDRESS}", () => h.listen(80, "${EDGE_ADDRESS}", ready));`
    : `u.bind(${PORT}, "${EDGE_ADDRESS}", ready);`
}
`;
// Unbound and unconnected: each datagram takes the route (and source address) of the moment.
const sender = (name: string) => `
const u = require("node:dgram").createSocket("udp4");
setInterval(() => u.send(${JSON.stringify(name)}, ${PORT}, "${EDGE_ADDRESS}", () => {}), 20);
`;

export class PathProbe {
  private readonly seen: { at: number; from: string; server: string }[] = [];
  private readonly procs: ChildProcess[];
  private readonly servers: string[];

  private constructor(listener: ChildProcess, senders: ChildProcess[], servers: string[]) {
    this.procs = [listener, ...senders];
    this.servers = servers;
    createInterface({ input: listener.stdout! }).on("line", (l) => {
      const [at, from, server] = l.split(" ");
      if (from && server) this.seen.push({ at: Number(at), from, server });
    });
  }

  /**
   * The listener on "the internet" (`inet`), with NetworkManager's check when `http`, and a sender
   * on each server; all die with their namespaces.
   */
  static async start(inet: Netns, servers: Netns[], o: { http: boolean }): Promise<PathProbe> {
    const l = inet.spawn([process.execPath, "-e", listener(o.http)], { stdio: ["ignore", "pipe", "inherit"] });
    await answered(l, null, "ready");
    const senders = servers.map((s) => s.spawn([process.execPath, "-e", sender(s.name)], { stdio: "ignore" }));
    return new PathProbe(
      l,
      senders,
      servers.map((s) => s.name),
    );
  }

  /**
   * Milliseconds from `since` until every server's traffic had moved to `source` for good: per
   * server, the first datagram of the run from `source` still unbroken `holdMs` later; the latest.
   */
  async movedTo(source: string, since: number, holdMs = 2_000, timeoutMs = 60_000): Promise<number> {
    for (;;) {
      const moved = this.servers.map((server) => {
        const after = this.seen.filter((d) => d.at >= since && d.server === server);
        const run = after.slice(after.findLastIndex((d) => d.from !== source) + 1);
        return run.length && run.at(-1)!.at - run[0]!.at >= holdMs ? run[0]!.at - since : null;
      });
      if (moved.every((m) => m !== null)) return Math.max(...(moved as number[]));
      if (Date.now() - since > timeoutMs) throw new Error(`the servers' traffic did not move to ${source}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  stop(): void {
    for (const p of this.procs) p.kill("SIGKILL");
  }
}
