// A data cap for real (lab/site.ts): the edge in workerd, two routers with NAT, a probe behind each
// and a server on both LANs, isp2 metered with a 6 MB cap. Bytes a server sends out through isp2's
// router show up in the edge's month-to-date figure for isp2, from the kernel's counters the
// agents report (once a minute, through isp1), and pass the 75 % warning.
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { labUnavailable } from "../../lab/netns.ts";
import { LabSite, settled } from "../../lab/site.ts";
import { gateway, wanPeer } from "../../lab/topology.ts";
import { NODE22, ROOT } from "../../lab/agent-process.ts";

const why = labUnavailable();
let site: LabSite;
const isp2Use = (s: Awaited<ReturnType<LabSite["status"]>>) => s.uplinks.find((u) => u.id === "isp2")!.dataUse!;

beforeAll(async () => {
  if (why) return;
  site = await LabSite.start({
    dir: join(ROOT, ".state", `lab-caps-${process.pid}`),
    policy: { heartbeatMs: 500, downAfterMs: 1_500, failbackAfterMs: 4_000, minDwellMs: 0 },
    uplinks: [
      { id: "isp1", priority: 1, name: "Fiber" },
      { id: "isp2", priority: 2, name: "LTE", metered: { capMB: 6, resetDay: 1 } },
    ],
    servers: [{ name: "srv1", backend: "iproute2", node: NODE22 }],
  });
}, 120_000);

afterAll(async () => {
  await site?.destroy();
}, 60_000);

describe.skipIf(why)(`a data cap in the lab${why ? ` — skipped: ${why}` : ""}`, () => {
  it("5 MB a server sends through isp2 are in the edge's month-to-date figure for isp2, and pass 75 % of its cap", async () => {
    await site.until((s) => s.activeUplink === "isp1" && settled(s, ["srv1"]), "steady state on isp1", 60_000);
    // The agents' first reports, at their first heartbeats, are the baselines.
    expect(isp2Use(await site.status())).toMatchObject({ usedMB: 0, capMB: 6 });
    const srv1 = site.lab.servers[0]!;
    // Through router 2 to an address on the internet (its end of router 2's WAN), port 9: a host
    // route of the test's own, since the agent's rules pin only its connections to the edge.
    const target = wanPeer(2);
    await srv1.ns.ip("route", "add", `${target}/32`, "via", gateway(2), "dev", "lan2");
    const script = `import { createSocket } from "node:dgram";
const s = createSocket("udp4");
s.bind({ address: ${JSON.stringify(srv1.address(2))} }, async () => {
  for (let i = 0; i < 5000; i++) await new Promise((ok) => s.send(Buffer.alloc(1000 - 42), 9, ${JSON.stringify(target)}, ok));
  s.close();
});`;
    await srv1.ns.exec([NODE22, "--input-type=module", "-e", script]);
    const s = await site.until((s) => isp2Use(s).usedMB >= 5, "the 5 MB in isp2's figure", 90_000, 1_000);
    // Besides the 5 MB: ARP, IPv6 neighbour discovery, the probes' and checks' heartbeats through isp2.
    expect(isp2Use(s).usedMB).toBeLessThan(5.5);
    expect(isp2Use(s).percent).toBeGreaterThan(75);
    const warned = (await site.events()).filter((e) => e.kind === "data-cap");
    expect(warned.map((e) => e.data)).toEqual([expect.objectContaining({ uplink: "isp2", percent: 75, capMB: 6 })]);
    console.log(`[lab] isp2 after 5 MB sent through it: ${isp2Use(s).usedMB} MB (${isp2Use(s).percent} % of 6 MB)`);
  }, 150_000);
});
