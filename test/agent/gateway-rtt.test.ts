// The router round trip is one TCP handshake: an accepted and a refused connection both count.
import { createServer } from "node:net";
import { describe, expect, it } from "vitest";
import { GatewayRtt } from "../../agent/src/host/gateway-rtt.ts";
import { measureHandshake } from "../../agent/src/host/handshake.ts";

const listening = () =>
  new Promise<{ port: number; close: () => void }>((resolve) => {
    const srv = createServer((s) => s.destroy()).listen(0, "127.0.0.1", () =>
      resolve({ port: (srv.address() as { port: number }).port, close: () => srv.close() }),
    );
  });

describe("gateway RTT", () => {
  it("an open port and a refused one are both answers; a local address that is not ours is not", async () => {
    const srv = await listening();
    const open = await measureHandshake("127.0.0.1", { port: srv.port, timeoutMs: 1_000 });
    srv.close();
    const refused = await measureHandshake("127.0.0.1", { port: srv.port, timeoutMs: 1_000 });
    expect(open).toBeTypeOf("number");
    expect(refused).toBeTypeOf("number");
    // Binding to an address this host does not have fails at once: no answer, no throw.
    expect(
      await measureHandshake("127.0.0.1", { port: srv.port, localAddress: "192.0.2.77", timeoutMs: 1_000 }),
    ).toBeNull();
  });

  it("keeps the latest figure, and looks the gateway up again after a miss", async () => {
    const srv = await listening();
    const asked: string[] = [];
    let answer: string | null = null;
    const g = new GatewayRtt(async () => (asked.push(String(answer)), answer), 50, { port: srv.port });
    g.start();
    const until = async (pred: () => boolean, what: string) => {
      for (const t0 = Date.now(); !pred(); await new Promise((r) => setTimeout(r, 10)))
        if (Date.now() - t0 > 10_000) throw new Error(`not within 10 s: ${what}`);
    };
    await until(() => asked.length >= 2, "two lookups while there is no gateway");
    expect(g.latest).toBeNull();
    answer = "127.0.0.1";
    await until(() => g.latest !== null, "a measurement once there is one");
    // A few more rounds (each 50 ms): the known gateway is measured again, not looked up again.
    await new Promise((r) => setTimeout(r, 150));
    g.stop();
    srv.close();
    expect(g.latest).toBeTypeOf("number");
    // Asked while there was none; once known, kept (no lookup per measurement).
    expect(asked.filter((a) => a === "127.0.0.1")).toHaveLength(1);
  });
});
