// `npm run demo`: the whole job on one machine, no Cloudflare account. Starts the real edge
// locally and a site with two probes and two servers — on real test hosts in network namespaces
// when it can (root on Linux), simulated otherwise — cuts the primary uplink, narrates with times.
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import { labUnavailable } from "../lab/netns.ts";
import { settled } from "../lab/site.ts";
import { freePort } from "../tools/local-edge.ts";
import { startLabWorld } from "./lab-world.ts";
import { startSimWorld } from "./sim-world.ts";
import type { DemoPolicy, DemoWorld } from "./world.ts";

const root = resolve(import.meta.dirname, "..");
const USAGE = `npm run demo [-- OPTIONS]

Starts the real edge locally (workerd, nothing leaves this machine), a site of two probes and two
servers, cuts the primary uplink and narrates detection, switch, tunnel restart and failback. As
root on Linux the hosts are real (network namespaces); elsewhere they are simulated. Ctrl-C cleans up.

Options:
  --simulate     simulate the hosts even where the lab could run (root on Linux)
  --port PORT    serve the status page on this loopback port (default: a free one)
  -h, --help     this text

Example: npm run demo -- --simulate --port 8790`;

function options(): { simulate: boolean; port?: string } {
  try {
    const { values } = parseArgs({
      options: {
        simulate: { type: "boolean", default: false },
        port: { type: "string" },
        help: { type: "boolean", short: "h", default: false },
      },
    });
    if (values.help) {
      console.log(USAGE);
      process.exit(0);
    }
    if (values.port !== undefined && !/^\d{1,5}$/.test(values.port))
      throw new Error(`--port takes a port number, not "${values.port}"`);
    return values;
  } catch (err) {
    // One line, not a stack trace: parseArgs says which option it did not know.
    console.error(`demo: ${(err as Error).message} (npm run demo -- --help)`);
    process.exit(2);
  }
}
const values = options();
const policy: DemoPolicy = { heartbeatMs: 1_000, downAfterMs: 3_000, failbackAfterMs: 15_000, minDwellMs: 5_000 };
const t0 = Date.now();
const clock = () => `${((Date.now() - t0) / 1000).toFixed(1).padStart(5)} s`;
const say = (msg: string) => console.log(`${clock()}  ${msg}`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let world: DemoWorld | null = null;
let stopping = false;
let cleaning: Promise<never> | null = null;
/** Once: Ctrl-C reaches the demo twice (from the terminal and through npm), and must not cut the cleanup short. */
function cleanup(code: number): Promise<never> {
  stopping = true;
  cleaning ??= (async () => {
    say("cleaning up");
    await world?.stop().catch(() => undefined);
    process.exit(code);
  })();
  return cleaning;
}
process.on("SIGINT", () => void cleanup(130));
process.on("SIGTERM", () => void cleanup(143));

/** Prints what the edge decided and what the hosts did, as it happens. */
function narrator(w: DemoWorld): () => Promise<void> {
  let seen = 0;
  const quiet = new Set(["agent-enrolled", "config", "applied", "tunnels-restarted", "agent-version"]);
  return async () => {
    for (const e of await w.events().catch(() => [])) {
      if (e.seq <= seen) continue;
      seen = e.seq;
      if (!quiet.has(e.kind)) say(`edge: ${e.message}`);
    }
    for (const line of w.news()) say(line);
  };
}

/** Narrates until the site is on `uplink` with every server switched and the tunnels restarted. */
async function untilOn(w: DemoWorld, uplink: string, narrate: () => Promise<void>, ms: number): Promise<number> {
  const started = Date.now();
  while (!stopping && Date.now() - started < ms) {
    await narrate();
    const s = await w.status().catch(() => null);
    if (s && s.activeUplink === uplink && settled(s, w.servers)) return Date.now() - started;
    await sleep(200);
  }
  throw new Error(`the site did not settle on ${uplink} within ${ms / 1000} s`);
}

async function narrateFor(ms: number, narrate: () => Promise<void>): Promise<void> {
  for (const end = Date.now() + ms; !stopping && Date.now() < end; await sleep(200)) await narrate();
}

async function main() {
  const why = values.simulate ? "--simulate" : labUnavailable();
  const port = values.port ? Number(values.port) : await freePort();
  console.log("wanwatch demo");
  world = why ? await startSimWorld(root, policy, port) : await startLabWorld(root, policy, port);
  console.log(`${world.banner}\n`);
  const w = world;
  say(`edge running; status page (live): ${w.edgeUrl}/sites/${w.site}   API: ${w.edgeUrl}/v1/sites/${w.site}/status`);
  say(
    `policy: heartbeat ${policy.heartbeatMs / 1000} s, an uplink is down after ${policy.downAfterMs / 1000} s of silence, failback after ${policy.failbackAfterMs / 1000} s of health`,
  );
  const narrate = narrator(w);
  await untilOn(w, "isp1", narrate, 60_000);
  say("steady: every server routes through isp1 (Fiber), tunnels connected through it");
  await narrateFor(4_000, narrate);

  say("✂  cutting isp1's uplink (its router and LAN stay up: the case Linux cannot handle alone)");
  await w.cut();
  const down = await untilOn(w, "isp2", narrate, 60_000);
  await narrateFor(1_000, narrate);
  say(
    `→ failover complete ${(down / 1000).toFixed(1)} s after the cut (policy floor: downAfterMs ${policy.downAfterMs / 1000} s + one heartbeat)`,
  );
  await narrateFor(4_000, narrate);

  say("🔌 isp1 is back; the edge holds the backup for failbackAfterMs before returning");
  await w.restore();
  const up = await untilOn(w, "isp1", narrate, 90_000);
  await narrateFor(1_000, narrate);
  say(
    `→ failback complete ${(up / 1000).toFixed(1)} s after isp1 returned (hold-down ${policy.failbackAfterMs / 1000} s)`,
  );
  say(why ? "done. As root on Linux the same demo runs on real hosts in network namespaces." : "done.");
  await cleanup(0);
}

main().catch(async (err) => {
  if (stopping) return; // interrupted: the cleanup is already under way
  console.error(`demo failed: ${(err as Error).message}`);
  await cleanup(1);
});
