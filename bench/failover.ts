// `npm run bench:failover` (root on Linux): the lab site (lab/site.ts), its primary uplink cut
// and restored N times. Per cut it prints detection (cut → directive issued at the edge), routes
// switched on every server, tunnels reconnected through the backup, the same for the failback,
// then medians and their ratio to the policy's floor. Times come from the edge's events, the
// agents' logs and the tunnel endpoint, all on this machine's clock.
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { labUnavailable } from "../lab/netns.ts";
import { networkManagerUnavailable } from "../lab/network-manager.ts";
import { LabSite, settled } from "../lab/site.ts";
import {
  beforeCut,
  POLICY_FLAGS,
  median,
  type Phase,
  phase,
  policyOf,
  type ServerSteps,
  sec,
} from "./lib/failover-phase.ts";

const { values } = parseArgs({
  options: {
    cuts: { type: "string", default: "10" },
    ...POLICY_FLAGS,
    // Server witnesses needed to take an uplink down before downAfterMs (0: silence alone).
    "witness-quorum": { type: "string", default: "2" },
    // isp2 metered: a standby heartbeated slowly, made active (and watched at full rate) by the cut.
    metered: { type: "boolean", default: false },
  },
});
const cuts = Number(values.cuts);
const policy = { ...policyOf(values), witnessQuorum: Number(values["witness-quorum"]) };
const SERVERS = ["srv1", "srv2"];

const why = labUnavailable() ?? networkManagerUnavailable();
if (why) {
  console.error(`bench:failover needs the lab: ${why}`);
  process.exit(2);
}

let site: LabSite | null = null;
let cleaning: Promise<void> | null = null;
// Once, however many times Ctrl-C arrives: a second signal must not cut the cleanup short.
process.on("SIGINT", () => void (cleaning ??= (site?.destroy() ?? Promise.resolve()).then(() => process.exit(130))));

/** Median time each server's agent took to put its default route back after it was moved by hand. */
async function drifts(s: LabSite, n: number): Promise<string[]> {
  const out: string[] = [];
  for (const id of SERVERS) {
    const times: number[] = [];
    for (let i = 0; i < n; i++) {
      const seen = s.log(id).length;
      await s.driftToLan2(id); // as in lab scenario 13
      const deadline = Date.now() + 10_000;
      let repaired: Record<string, unknown> | undefined;
      while (
        !(repaired = s
          .log(id)
          .slice(seen)
          .find((l) => l.msg === "route drift repaired")) &&
        Date.now() < deadline
      )
        await new Promise((r) => setTimeout(r, 20));
      if (!repaired) throw new Error(`${id}: the drift was not repaired`);
      times.push(repaired.repairedInMs as number);
    }
    out.push(`${id} median ${median(times)} ms (max ${Math.max(...times)} ms)`);
  }
  return out;
}

/** Reboots each server `n` times during an outage of isp1: agent start → both families routed through isp2. */
async function reboots(s: LabSite, n: number): Promise<string[]> {
  await s.lab.cut(1);
  try {
    await s.until((st) => st.activeUplink === "isp2" && settled(st, SERVERS), "everyone on isp2", 30_000);
    const out: string[] = [];
    for (const id of SERVERS) {
      const times: number[] = [];
      for (let i = 0; i < n; i++) {
        const started = await s.reboot(id);
        await s.routedThrough(id, "lan2");
        times.push(Date.now() - started);
        await s.until(
          (st) => settled(st, SERVERS) && (st.agents.find((a) => a.id === id)?.lastSeenAt ?? 0) > started,
          `${id} heard again`,
          30_000,
        );
      }
      out.push(`${id} median ${median(times)} ms (max ${Math.max(...times)} ms)`);
    }
    return out;
  } finally {
    await s.lab.restore(1);
  }
}

async function main() {
  console.log(
    `bench:failover — ${cuts} cuts${values.metered ? ", isp2 metered" : ""}; policy heartbeat ${policy.heartbeatMs} ms, downAfter ${policy.downAfterMs} ms, failbackAfter ${policy.failbackAfterMs} ms, witnessQuorum ${policy.witnessQuorum}${policy.witnessQuorum ? "" : " (silence alone)"}`,
  );
  console.log(
    "servers: srv1 (iproute2, Node 20), srv2 (nmcli, Node 22); per-server tunnel restarts; times in seconds from the cut / the restore\n",
  );
  site = await LabSite.start({
    dir: join(resolve(import.meta.dirname, ".."), ".state", `bench-failover-${process.pid}`),
    policy,
    ...(values.metered
      ? {
          uplinks: [
            { id: "isp1", priority: 1, name: "Fiber" },
            { id: "isp2", priority: 2, name: "LTE", metered: true },
          ],
        }
      : {}),
  });
  const s = site;
  await s.until((st) => st.activeUplink === "isp1" && settled(st, SERVERS), "start on isp1", 60_000);
  const downs: Phase[] = [];
  const ups: Phase[] = [];
  console.log(" cut │ failover by:  detect  routes tunnels    ipv6 │ failback: detect  routes tunnels    ipv6");
  for (let i = 1; i <= cuts; i++) {
    await beforeCut(policy.heartbeatMs);
    const d = await phase(s, SERVERS, () => s.lab.cut(1), "isp2", "failover");
    const u = await phase(s, SERVERS, () => s.lab.restore(1), "isp1", "failback");
    downs.push(d);
    ups.push(u);
    const v6 = (p: Phase) => (p.ipv6 === null ? "     –" : sec(p.ipv6));
    console.log(
      `${String(i).padStart(4)} │ ${d.witnessed ? "witness" : "silence"}  ${sec(d.detect)}  ${sec(d.routes)}  ${sec(d.tunnels)}  ${v6(d)} │          ${sec(u.detect)}  ${sec(u.routes)}  ${sec(u.tunnels)}  ${v6(u)}`,
    );
  }
  const row = (name: string, xs: Phase[], floor: number) => {
    const m = {
      detect: median(xs.map((x) => x.detect)),
      routes: median(xs.map((x) => x.routes)),
      tunnels: median(xs.map((x) => x.tunnels)),
    };
    const v6 = xs.every((x) => x.ipv6 !== null) ? `, IPv6 on all servers ${sec(median(xs.map((x) => x.ipv6!)))} s` : "";
    console.log(
      `${name}: median detect ${sec(m.detect)} s, routes on all servers ${sec(m.routes)} s, tunnels reconnected ${sec(m.tunnels)} s${v6}; ` +
        `floor ${(floor / 1000).toFixed(2)} s → ratios ${(m.detect / floor).toFixed(2)} / ${(m.routes / floor).toFixed(2)} / ${(m.tunnels / floor).toFixed(2)}`,
    );
  };
  console.log("");
  row("failover", downs, policy.downAfterMs + policy.heartbeatMs);
  row("failback", ups, policy.failbackAfterMs + policy.heartbeatMs);
  console.log("\nwhere the failover's time goes, per server (medians, seconds from the cut):");
  console.log("  server          │ decided  applying  routed  restarted  tunnel │ decided→routed  routed→tunnel");
  for (const id of SERVERS) {
    const m = (k: keyof ServerSteps) => median(downs.map((d) => d.servers[id]![k]));
    const decided = median(downs.map((d) => d.detect));
    console.log(
      `  ${`${id} (${s.server(id).nm ? "nmcli" : "iproute2"})`.padEnd(15)} │ ${sec(decided)}  ${sec(m("applying"))}    ${sec(m("routed"))}    ${sec(m("restarted"))}  ${sec(m("tunnel"))} │         ${sec(m("routed") - decided)}         ${sec(m("tunnel") - m("routed"))}`,
    );
  }
  console.log(
    `\nroute drift (the backup's default route given the better metric; under NetworkManager by its profile, the agent's own route flushed; ${cuts} times per server): ${(await drifts(s, cuts)).join("; ")}`,
  );
  console.log(
    `reboot during an outage (agent started → both families through the backup, ${cuts} times per server): ${(await reboots(s, cuts)).join("; ")}`,
  );
  await s.destroy();
}

main().catch(async (err) => {
  console.error(`bench:failover failed: ${(err as Error).message}`);
  await site?.destroy();
  process.exit(1);
});
