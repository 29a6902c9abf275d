// `npm run soak` (root on Linux): the lab site (lab/site.ts) under random faults for
// --minutes (default 10), from --seed (printed, so a run can be replayed). Each round breaks
// something — the primary's uplink cut, flapping, lossy, slow or its router dead; the backup's
// uplink cut; the edge restarted or killed; agents killed — then mends it, and waits each time for
// the site to converge to what the policy promises (every server on the expected uplink, routes
// verified, every agent heard again; after the mend, both uplinks up and healthy).
// At the end: switches seen against switches expected, events lost (a gap in the event log's
// numbering, or a generation without its switch event), and the longest convergence. Exits 1 if a
// round did not converge, a switch was unexpected or an event was lost.
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import type { SiteEvent, SiteStatus } from "#shared";
import { labUnavailable } from "../lab/netns.ts";
import { networkManagerUnavailable } from "../lab/network-manager.ts";
import { LabSite, settled } from "../lab/site.ts";
import { sleep } from "./lib/site-run.ts";

const { values } = parseArgs({ options: { minutes: { type: "string", default: "10" }, seed: { type: "string" } } });
const minutes = Number(values.minutes);
const seed = values.seed === undefined ? Date.now() % 1_000_000 : Number(values.seed);
// Long enough a downAfterMs that a lossy uplink (TCP turning loss into delay) is judged by its loss.
const policy = { heartbeatMs: 500, downAfterMs: 4_000, failbackAfterMs: 4_000, minDwellMs: 0 };
const SERVERS = ["srv1", "srv2"];
const AGENTS = ["sbc1", "sbc2", ...SERVERS];

const why = labUnavailable() ?? networkManagerUnavailable();
if (why || !(minutes > 0) || !Number.isInteger(seed)) {
  console.error(why ? `soak needs the lab: ${why}` : "usage: npm run soak -- [--minutes N] [--seed S]");
  process.exit(2);
}

/** mulberry32: a small seeded generator, so a failing run can be replayed with its seed. */
function random(s: number): () => number {
  return () => {
    s = (s + 0x6d2b79f5) | 0;
    let t = Math.imul(s ^ (s >>> 15), 1 | s);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}
const rand = random(seed);
const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;

interface Fault {
  name: string;
  /** Breaks something; the uplink every server must end on meanwhile. */
  breakIt(s: LabSite): Promise<"isp1" | "isp2">;
  mend(s: LabSite): Promise<void>;
  /** Switches the policy owes for a break and its mend. */
  switches: number;
  /** The probe the break leaves with no way to the edge; every other agent must be heard again. */
  silences?: string;
}

const faults: Fault[] = [
  {
    name: "cut isp1",
    breakIt: async (s) => (await s.lab.cut(1), "isp2"),
    mend: (s) => s.lab.restore(1),
    switches: 2,
    silences: "sbc1",
  },
  {
    name: "router 1 dies",
    breakIt: async (s) => (await s.lab.routerDown(1), "isp2"),
    mend: (s) => s.lab.routerUp(1),
    switches: 2,
    silences: "sbc1",
  },
  {
    // Each cut outlasts downAfterMs, each return is shorter than failbackAfterMs: one failover, and
    // the failback only once it holds. (Shorter cuts are the policy's to ride out, or to count as loss.)
    name: "isp1 flaps (5 s down, 3 s up, ×3)",
    breakIt: async (s) => {
      for (let i = 0; i < 3; i++) {
        await s.lab.cut(1);
        await sleep(5_000);
        await s.lab.restore(1);
        await sleep(3_000);
      }
      return "isp2";
    },
    mend: async () => {},
    switches: 2,
  },
  {
    name: "isp1 loses 35 %",
    breakIt: async (s) => (await s.lab.lossy(1, 35), "isp2"),
    mend: (s) => s.lab.lossy(1, 0),
    switches: 2,
  },
  {
    name: "isp1 slow (300 ms each way)",
    breakIt: async (s) => (await s.lab.delayed(1, 300), "isp2"),
    mend: (s) => s.lab.delayed(1, 0),
    switches: 2,
  },
  {
    name: "cut isp2 (the backup)",
    breakIt: async (s) => (await s.lab.cut(2), "isp1"),
    mend: (s) => s.lab.restore(2),
    switches: 0,
    silences: "sbc2",
  },
  { name: "edge restarted", breakIt: async (s) => (await s.edge.restart(), "isp1"), mend: async () => {}, switches: 0 },
  {
    name: "edge killed (SIGKILL) and restarted",
    breakIt: async (s) => (await s.edge.crash(), await s.edge.restart(), "isp1"),
    mend: async () => {},
    switches: 0,
  },
  {
    name: "every agent killed (SIGKILL) and restarted",
    breakIt: async (s) => {
      await Promise.all(AGENTS.map((a) => s.stopAgent(a, "SIGKILL")));
      for (const a of AGENTS) s.startAgent(a);
      return "isp1";
    },
    mend: async () => {},
    switches: 0,
  },
];

let site: LabSite | null = null;
let cleaning: Promise<void> | null = null;
process.on("SIGINT", () => void (cleaning ??= (site?.destroy() ?? Promise.resolve()).then(() => process.exit(130))));

/**
 * Until every server is on `uplink` with verified routes and every agent but `silent` has been
 * heard since now (so a restarted edge or agent counts only once it is back); with `whole`, also
 * until every uplink is up and healthy again. The time it took.
 */
async function converge(
  s: LabSite,
  uplink: string,
  what: string,
  o: { silent?: string; whole?: boolean } = {},
): Promise<number> {
  const t0 = Date.now();
  const heard = (st: SiteStatus) => st.agents.every((a) => a.id === o.silent || (a.lastSeenAt ?? 0) >= t0);
  const whole = (st: SiteStatus) => !o.whole || st.uplinks.every((u) => u.state === "up" && !u.degraded);
  // A lossy primary is judged on a minute of handshakes; then the hold-down.
  await s.until(
    (st: SiteStatus) => st.activeUplink === uplink && settled(st, SERVERS) && heard(st) && whole(st),
    what,
    180_000,
    100,
  );
  return Date.now() - t0;
}

async function main(): Promise<number> {
  console.log(
    `soak — ${minutes} min of random faults on the lab, seed ${seed} (replay: npm run soak -- --seed ${seed})`,
  );
  site = await LabSite.start({
    dir: join(resolve(import.meta.dirname, ".."), ".state", `soak-${process.pid}`),
    policy,
  });
  const s = site;
  await converge(s, "isp1", "start on isp1");
  const g0 = (await s.status()).generation;
  const since = Date.now();
  const seen = new Map<number, SiteEvent>();
  const collect = async () => {
    for (const e of await s.events(1_000)) seen.set(e.seq, e);
  };
  let expected = 0;
  let slowest = { ms: 0, what: "" };
  const end = since + minutes * 60_000;
  for (let round = 1; Date.now() < end; round++) {
    const f = pick(faults);
    const roundStart = Date.now();
    const broken = await f.breakIt(s);
    const a = await converge(s, broken, `round ${round}, ${f.name}: everyone on ${broken}`, { silent: f.silences });
    await f.mend(s);
    const b = await converge(
      s,
      "isp1",
      `round ${round}, ${f.name} mended: everyone back on isp1, both uplinks healthy`,
      { whole: true },
    );
    expected += f.switches;
    for (const [ms, what] of [
      [a, f.name],
      [b, `${f.name}, mended`],
    ] as const)
      if (ms > slowest.ms) slowest = { ms, what };
    await collect();
    // This round's switches from the event log (a lost one shows in the totals at the end).
    const made = [...seen.values()].filter((e) => e.kind === "switch" && e.at >= roundStart);
    const off =
      made.length === f.switches
        ? ""
        : `  ← ${made.length} switches, expected ${f.switches}: ${made.map((e) => `${e.data?.reason} to ${e.data?.to} at +${((e.at - roundStart) / 1000).toFixed(1)} s`).join(", ")}`;
    console.log(
      `${String(round).padStart(3)}  ${f.name.padEnd(44)} converged in ${(a / 1000).toFixed(1).padStart(5)} s, back in ${(b / 1000).toFixed(1).padStart(5)} s${off}`,
    );
    await sleep(500 + rand() * 2_000);
  }
  await collect();
  const st = await s.status();
  const seqs = [...seen.keys()].sort((x, y) => x - y);
  const gaps = seqs.filter((q, i) => i > 0 && q !== seqs[i - 1]! + 1).length;
  const switchEvents = [...seen.values()].filter((e) => e.kind === "switch" && e.at >= since);
  const generations = new Set(switchEvents.map((e) => (e.data as { generation: number }).generation));
  const unrecorded = st.generation - g0 - generations.size;
  const lost = gaps + Math.max(0, unrecorded);
  console.log(
    `\nswitches: ${st.generation - g0} (generation ${g0} → ${st.generation}), expected ${expected}; switch events ${switchEvents.length}`,
  );
  console.log(
    `events lost: ${lost} (${gaps} gaps in ${seqs.length} numbered events, ${Math.max(0, unrecorded)} generations without their event)`,
  );
  console.log(`longest convergence: ${(slowest.ms / 1000).toFixed(1)} s (${slowest.what})`);
  await s.destroy();
  site = null;
  return st.generation - g0 === expected && lost === 0 ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  async (err) => {
    console.error(`soak failed (seed ${seed}): ${(err as Error).message}`);
    await (cleaning ??= site?.destroy() ?? Promise.resolve());
    process.exit(1);
  },
);
