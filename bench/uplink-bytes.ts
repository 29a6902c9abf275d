// `npm run bench:uplink-bytes` (root on Linux): what wanwatch costs each uplink in data. The lab
// site (2 probes, --servers servers on both LANs, isp2 `metered` unless --unmetered) at steady
// state, both uplinks up and the site on isp1; the kernel's counters of each router's WAN port
// (`ip -s -j link`), read at the start and the end of --seconds, give bytes and packets per second
// both ways, scaled to a day and a 30-day month, with an estimate of what TLS would add.
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { labUnavailable } from "../lab/netns.ts";
import { LabSite, settled } from "../lab/site.ts";
import { NODE20, NODE22 } from "../lab/agent-process.ts";
import type { Netns } from "../lab/netns.ts";

const { values } = parseArgs({
  options: {
    seconds: { type: "string", default: "120" },
    servers: { type: "string", default: "5" },
    unmetered: { type: "boolean", default: false },
    "heartbeat-ms": { type: "string", default: "1000" },
  },
});
const seconds = Number(values.seconds);
const serverCount = Number(values.servers);
const heartbeatMs = Number(values["heartbeat-ms"]);
const policy = { heartbeatMs, downAfterMs: 3 * heartbeatMs, failbackAfterMs: 60_000, minDwellMs: 10_000 };
const SERVERS = Array.from({ length: serverCount }, (_, k) => `srv${k + 1}`);
/**
 * TLS 1.3 with an AEAD cipher adds 22 bytes to each record (5 of header, 1 of inner content type,
 * 16 of tag). Counted once per packet, as if every packet carried one record: an upper bound, since
 * pure ACKs and the probe's path handshakes (plain TCP, no TLS) carry none. Handshakes of new TLS
 * connections are left out: the channels are long-lived WebSockets, reopened only after an outage.
 */
const TLS_BYTES_PER_PACKET = 22;
const DAY_S = 86_400;
const MONTH_DAYS = 30;

const why = labUnavailable();
if (why) {
  console.error(`bench:uplink-bytes needs the lab: ${why}`);
  process.exit(2);
}

interface Counters {
  bytes: number;
  packets: number;
}

/** Both directions of router N's WAN port, from the kernel's own counters. */
async function wanCounters(router: Netns): Promise<Counters> {
  const [link] = JSON.parse(await router.exec(["ip", "-s", "-j", "link", "show", "wan"])) as {
    stats64: { rx: { bytes: number; packets: number }; tx: { bytes: number; packets: number } };
  }[];
  const { rx, tx } = link!.stats64;
  return { bytes: rx.bytes + tx.bytes, packets: rx.packets + tx.packets };
}

let site: LabSite | null = null;
process.on("SIGINT", () => void (site?.destroy() ?? Promise.resolve()).then(() => process.exit(130)));

async function main() {
  const metered = !values.unmetered;
  console.log(
    `bench:uplink-bytes — 2 probes, ${serverCount} servers, heartbeat ${heartbeatMs} ms over plain WebSocket, isp2 ${metered ? "metered" : "not metered"}; ${seconds} s at steady state\n`,
  );
  site = await LabSite.start({
    dir: join(resolve(import.meta.dirname, ".."), ".state", `bench-uplink-bytes-${process.pid}`),
    policy,
    uplinks: [
      { id: "isp1", priority: 1, name: "Fiber" },
      { id: "isp2", priority: 2, name: "LTE", ...(metered ? { metered: true } : {}) },
    ],
    servers: SERVERS.map((name, k) => ({ name, backend: "iproute2", node: k % 2 ? NODE22 : NODE20 })),
  });
  const s = site;
  await s.until(
    (st) =>
      st.activeUplink === "isp1" &&
      st.uplinks.every((u) => u.state === "up") &&
      settled(st, SERVERS) &&
      st.agents.every((a) => !a.stale),
    "steady state on isp1",
    90_000,
  );
  // Past the start: sockets open, the first answers adopted, the probes' windows filling.
  await new Promise((r) => setTimeout(r, 15_000));
  const before = await Promise.all(s.lab.routers.map(wanCounters));
  const t0 = performance.now();
  await new Promise((r) => setTimeout(r, seconds * 1000));
  const after = await Promise.all(s.lab.routers.map(wanCounters));
  const elapsed = (performance.now() - t0) / 1000;
  console.log("uplink │   B/s  pkt/s │ MB/day GB/month │ TLS est. B/s │ with TLS: MB/day MB/month GB/month");
  for (const [i, id] of ["isp1", "isp2"].entries()) {
    const bps = (after[i]!.bytes - before[i]!.bytes) / elapsed;
    const pps = (after[i]!.packets - before[i]!.packets) / elapsed;
    const tls = pps * TLS_BYTES_PER_PACKET;
    const day = (b: number) => (b * DAY_S) / 1e6;
    console.log(
      `${id.padEnd(6)} │ ${bps.toFixed(0).padStart(5)} ${pps.toFixed(1).padStart(6)} │ ${day(bps).toFixed(1).padStart(6)} ${((day(bps) * MONTH_DAYS) / 1e3).toFixed(2).padStart(8)} │ ${tls.toFixed(0).padStart(12)} │ ${day(
        bps + tls,
      )
        .toFixed(1)
        .padStart(
          15,
        )} ${(day(bps + tls) * MONTH_DAYS).toFixed(0).padStart(9)} ${((day(bps + tls) * MONTH_DAYS) / 1e3).toFixed(2).padStart(8)}`,
    );
  }
  console.log(
    `\nMB = 10⁶ bytes, a month = ${MONTH_DAYS} days; both directions of each router's WAN port; TLS: ${TLS_BYTES_PER_PACKET} bytes per packet (TLS 1.3 record overhead, every packet taken to carry one record: an upper bound)`,
  );
  // After the figures: a failed look at the edge must not lose them.
  const st = await s.status();
  if (st.activeUplink !== "isp1" || st.uplinks.some((u) => u.state !== "up"))
    throw new Error(`the site left steady state during the run: ${JSON.stringify(st.uplinks)}`);
  await s.destroy();
}

main().catch(async (err) => {
  console.error(`bench:uplink-bytes failed: ${(err as Error).message}`);
  await site?.destroy();
  process.exit(1);
});
