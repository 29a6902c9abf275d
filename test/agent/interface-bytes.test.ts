// The counters the agent reports are the kernel's own: read (as the agent reads them) inside a
// namespace of the test's own, around traffic sent through one uplink's interface, and checked
// against what the kernel tells `ip -s` over netlink.
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { NODE22, ROOT } from "../../lab/agent-process.ts";
import { labUnavailable, type Netns } from "../../lab/netns.ts";
import { createTwoLanHost } from "../../lab/two-lan-host.ts";
import type { InterfaceBytes } from "../../agent/src/host/interface-bytes.ts";

const noLab = labUnavailable();
let host: { ns: Netns; destroy: () => Promise<void> } | null = null;
beforeAll(async () => {
  if (noLab) return;
  host = await createTwoLanHost();
  // Nobody is on lan2: a fixed neighbour lets datagrams leave through it without ARP.
  await host.ns.ip("neigh", "add", "192.168.2.99", "lladdr", "02:00:00:00:02:99", "dev", "lan2", "nud", "permanent");
});
afterAll(async () => {
  await host?.destroy();
});

const MODULE = join(ROOT, "agent/src/host/interface-bytes.ts");

/** Each LAN's counters as the agent reads them, inside the host. */
async function read(): Promise<{ lan1: InterfaceBytes; lan2: InterfaceBytes }> {
  const script = `import { readInterfaceBytes as r } from ${JSON.stringify(MODULE)};
console.log(JSON.stringify({ lan1: r("lan1"), lan2: r("lan2") }));`;
  return JSON.parse(await host!.ns.exec([NODE22, "--input-type=module", "-e", script]));
}

/** `n` UDP datagrams of 1,000 bytes from lan2's address to its neighbour. */
async function send(n: number): Promise<void> {
  const script = `import { createSocket } from "node:dgram";
const s = createSocket("udp4");
s.bind({ address: "192.168.2.21" }, async () => {
  for (let i = 0; i < ${n}; i++) await new Promise((ok) => s.send(Buffer.alloc(1000), 9, "192.168.2.99", ok));
  s.close();
});`;
  await host!.ns.exec([NODE22, "--input-type=module", "-e", script]);
}

const ipTxBytes = async (dev: string) =>
  (JSON.parse(await host!.ns.ip("-s", "-j", "link", "show", dev)) as { stats64: { tx: { bytes: number } } }[])[0]!
    .stats64.tx.bytes;

describe.skipIf(noLab)(`an uplink's byte counters${noLab ? ` — skipped: ${noLab}` : ""}`, () => {
  it("are the kernel's counters of that uplink's interface: traffic through lan2 counts there, not on lan1", async () => {
    const before = await read();
    await send(200);
    const after = await read();
    const onWire = 200 * (1000 + 8 + 20 + 14); // UDP, IPv4 and Ethernet headers
    expect(after.lan2.counter).toBe(before.lan2.counter);
    expect(after.lan2.tx - before.lan2.tx).toBeGreaterThanOrEqual(onWire);
    expect(after.lan2.tx - before.lan2.tx).toBeLessThan(onWire + 2_000);
    expect(after.lan2.tx).toBe(await ipTxBytes("lan2"));
    expect(after.lan1.tx - before.lan1.tx).toBeLessThan(2_000);
    expect(after.lan1.counter).not.toBe(after.lan2.counter);
  });

  it("start a new counting when the interface is created again", async () => {
    const before = await read();
    await host!.ns.ip("link", "del", "lan2");
    await host!.ns.ip("link", "add", "lan2", "type", "veth", "peer", "name", "far2");
    const after = await read();
    expect(after.lan2.counter).not.toBe(before.lan2.counter);
    expect(after.lan2.counter.split(":")[0]).toBe(before.lan2.counter.split(":")[0]);
    expect(after.lan2.tx).toBeLessThan(before.lan2.tx);
  });
});
