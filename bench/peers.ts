// `npm run bench:peers` (root on Linux): the same cut (router 1's uplink dies, its LAN stays up)
// against what a site could run instead of wanwatch, one after another in one lab run:
//   (a) keepalived VRRP between the routers, a track_script pinging the edge through each WAN
//       every 1 s, fall 1 / rise 1 and the more careful fall 3;
//   (b) NetworkManager's connectivity check (interval 5) on a server with both uplinks;
//   (c) wanwatch by silence alone; (d) wanwatch with witnesses (quorum 2).
// Per peer: cut → every server's traffic (its route) on the backup, and restore → back on the
// primary, medians of N cuts, as ratios to (d). Every peer is timed from the same vantage, "the
// internet"'s side (bench/lib/path-probe.ts): the first datagram of each server's steady flow
// arriving through router 2.
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { labUnavailable, type Netns, waitUntil } from "../lab/netns.ts";
import { networkManagerUnavailable } from "../lab/network-manager.ts";
import { DEFAULT_SERVERS, LabSite, settled } from "../lab/site.ts";
import { createLab, EDGE_ADDRESS, type Lab, publicAddress } from "../lab/topology.ts";
import { beforeCut, median, sec } from "./lib/failover-phase.ts";
import { CONNECTIVITY_RESPONSE, PathProbe } from "./lib/path-probe.ts";
import { keepalivedUnavailable, sharedSegment, startKeepalived } from "./lib/vrrp.ts";

const { values } = parseArgs({
  options: {
    cuts: { type: "string", default: "5" },
    // Which peers to run (the ratios need d).
    peers: { type: "string", default: "a,b,c,d" },
  },
});
const cuts = Number(values.cuts);
const chosen = new Set(values.peers.split(","));
const NM_INTERVAL_S = 5;
/** wanwatch's default policy, the one the README's witness figures use. */
const POLICY = { heartbeatMs: 1_000, downAfterMs: 3_000, failbackAfterMs: 4_000, minDwellMs: 0 };

const why =
  labUnavailable() ??
  (chosen.has("a") ? keepalivedUnavailable() : null) ??
  (chosen.has("b") || chosen.has("c") || chosen.has("d") ? networkManagerUnavailable() : null);
if (why) {
  console.error(`bench:peers needs the lab: ${why}`);
  process.exit(2);
}

interface Result {
  name: string;
  settings: string;
  /** Per cut: ms from the cut to the server(s) on the backup, and from the restore back on the primary. */
  over: number[];
  back: number[];
}

const stateDir = (tag: string) =>
  join(resolve(import.meta.dirname, ".."), ".state", `bench-peers-${tag}-${process.pid}`);

let cleanup: (() => Promise<void>) | null = null;
let cleaning: Promise<void> | null = null;
// Once, however many times Ctrl-C arrives: a second signal must not cut the cleanup short.
process.on("SIGINT", () => void (cleaning ??= (cleanup?.() ?? Promise.resolve()).then(() => process.exit(130))));

/** Runs `body` on something that must be destroyed whatever happens (a lab or a site). */
async function using<T extends { destroy(): Promise<void> }, R>(thing: T, body: (t: T) => Promise<R>): Promise<R> {
  cleanup = () => thing.destroy();
  try {
    return await body(thing);
  } finally {
    cleanup = null;
    await thing.destroy();
  }
}

interface CutHooks {
  /** NetworkManager's check answered by the probe's listener (the real edge serves HTTP itself). */
  http: boolean;
  /** Waits for the peer to settle once the edge answers. */
  ready?: () => Promise<unknown>;
  /** Waits before each cut (wanwatch: the site settled on the primary). */
  between?: () => Promise<unknown>;
  /** Says how the cut at `t0` was detected, for its line. */
  how?: (t0: number) => Promise<string>;
}

/**
 * Cuts and restores uplink 1 `cuts` times, timing when every server's traffic moves each way, as
 * the internet sees it (bench/lib/path-probe.ts): the same vantage for every peer.
 */
async function probedCuts(lab: Lab, servers: Netns[], r: Result, o: CutHooks): Promise<Result> {
  const probe = await PathProbe.start(lab.inet, servers, { http: o.http });
  await o.ready?.();
  await probe.movedTo(publicAddress(1), Date.now(), 1_000, 30_000);
  for (let i = 1; i <= cuts; i++) {
    await o.between?.();
    await beforeCut(POLICY.heartbeatMs);
    const t0 = Date.now();
    await lab.cut(1);
    r.over.push(await probe.movedTo(publicAddress(2), t0));
    const how = (await o.how?.(t0)) ?? "";
    const t1 = Date.now();
    await lab.restore(1);
    r.back.push(await probe.movedTo(publicAddress(1), t1));
    console.log(
      `  ${r.name}, cut ${i}: on the backup after ${sec(r.over.at(-1)!)} s${how}, on the primary again ${sec(r.back.at(-1)!)} s`,
    );
  }
  probe.stop();
  return r;
}

async function keepalived(fall: number): Promise<Result> {
  const r: Result = {
    name: `(a) keepalived VRRP, fall ${fall}`,
    settings: `advert_int 1; priority 110 (r1) / 100 (r2), preempt; vrrp_script \`ping -c 1 -W 1 <edge>\` interval 1, fall ${fall}, rise 1, weight 0 (a failed check: FAULT)`,
    over: [],
    back: [],
  };
  return using(await createLab({ servers: [], dir: stateDir(`vrrp${fall}`), dhcp: false }), async (lab) => {
    const server = await sharedSegment(lab);
    await startKeepalived(lab, fall, 1);
    return probedCuts(lab, [server], r, { http: true });
  });
}

async function networkManager(): Promise<Result> {
  const r: Result = {
    name: "(b) NetworkManager connectivity check",
    settings: `[connectivity] uri=http://<edge>/ response="${CONNECTIVITY_RESPONSE}" interval=${NM_INTERVAL_S}; two profiles, route metrics 100 / 101`,
    over: [],
    back: [],
  };
  const networkManagerConfig = `[connectivity]\nenabled=true\nuri=http://${EDGE_ADDRESS}/\nresponse=${CONNECTIVITY_RESPONSE}\ninterval=${NM_INTERVAL_S}\n`;
  const lab = await createLab({
    servers: [{ name: "srv0", networkManager: true, networkManagerConfig }],
    dir: stateDir("nm"),
    dhcp: false,
  });
  return using(lab, async () => {
    const nm = lab.servers[0]!.nm!;
    // Both devices checked and found online before the first cut.
    const online = async () =>
      (await nm.nmcli("-t", "-f", "DEVICE,IP4-CONNECTIVITY", "device", "status"))
        .split("\n")
        .filter((l) => /^lan[12]:full$/.test(l)).length === 2;
    return probedCuts(lab, [lab.servers[0]!.ns], r, {
      http: true,
      ready: () => waitUntil(online, "NetworkManager to find both uplinks online", 30_000, 200),
    });
  });
}

/** wanwatch on the lab site (two servers, one per backend), timed like the others: every server's traffic moved. */
async function wanwatch(witnessQuorum: number): Promise<Result> {
  const r: Result = {
    name: witnessQuorum ? "(d) wanwatch with witnesses" : "(c) wanwatch by silence alone",
    settings: `heartbeat 1 s, downAfterMs 3000, failbackAfterMs 4000, witnessQuorum ${witnessQuorum}; both servers (iproute2, nmcli)`,
    over: [],
    back: [],
  };
  const servers = DEFAULT_SERVERS.map((s) => s.name);
  const site = await LabSite.start({ dir: stateDir(`ww${witnessQuorum}`), policy: { ...POLICY, witnessQuorum } });
  const onPrimary = (s: LabSite) =>
    s.until((st) => st.activeUplink === "isp1" && settled(st, servers), "settled on isp1", 60_000);
  return using(site, (s) =>
    probedCuts(
      s.lab,
      s.lab.servers.map((x) => x.ns),
      r,
      {
        http: false,
        ready: () => onPrimary(s),
        between: () => onPrimary(s),
        how: async (t0) => {
          await s.until((st) => st.activeUplink === "isp2" && settled(st, servers), "failover to isp2", 60_000);
          const events = await s.events();
          return events.some(
            (e) => e.kind === "uplink" && e.at >= t0 && !!(e.data as { witnesses?: string[] }).witnesses,
          )
            ? " (on witnesses)"
            : " (by silence)";
        },
      },
    ),
  );
}

async function main() {
  console.log(
    `bench:peers — ${cuts} cuts of router 1's uplink per peer; times in seconds from the cut / the restore\n`,
  );
  const results: Result[] = [];
  if (chosen.has("a")) results.push(await keepalived(1), await keepalived(3));
  if (chosen.has("b")) results.push(await networkManager());
  if (chosen.has("c")) results.push(await wanwatch(0));
  if (chosen.has("d")) results.push(await wanwatch(2));
  const d = results.find((x) => x.name.startsWith("(d)"));
  const ratio = (x: number, ref: number | undefined) => (ref ? ` (${(x / ref).toFixed(2)} ×)` : "");
  console.log(`\n${"peer".padEnd(40)} │ cut → backup, median │ restore → primary, median`);
  for (const x of results) {
    const [over, back] = [median(x.over), median(x.back)];
    console.log(
      `${x.name.padEnd(40)} │ ${sec(over)} s${ratio(over, d && median(d.over)).padEnd(11)}  │ ${sec(back)} s${ratio(back, d && median(d.back))}`,
    );
  }
  console.log("\nsettings:");
  for (const x of results) console.log(`  ${x.name}: ${x.settings}`);
}

main().catch(async (err) => {
  console.error(`bench:peers failed: ${(err as Error).message}`);
  await cleanup?.();
  process.exit(1);
});
