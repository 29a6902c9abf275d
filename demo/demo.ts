// `npm run demo`: the whole job on one machine, no Cloudflare account. Starts the real edge
// locally, enrols a site with two probes and two servers, cuts the primary uplink, narrates.
import { rmSync } from "node:fs";
import { join, resolve } from "node:path";
import { startLocalEdge, type LocalEdge } from "../tools/local-edge.ts";
import { SimAgent, type World } from "./sim-agent.ts";

const root = resolve(import.meta.dirname, "..");
const SITE = "demo";
const policy = { heartbeatMs: 1_000, downAfterMs: 3_000, failbackAfterMs: 15_000, minDwellMs: 5_000 };
const t0 = Date.now();
const clock = () => `${((Date.now() - t0) / 1000).toFixed(1).padStart(5)} s`;
const say = (msg: string) => console.log(`${clock()}  ${msg}`);

let edge: LocalEdge | null = null;
let stopping = false;
async function cleanup(code: number): Promise<never> {
  stopping = true;
  await edge?.stop();
  process.exit(code);
}
process.on("SIGINT", () => void cleanup(130));
process.on("SIGTERM", () => void cleanup(143));

async function admin(method: string, path: string, body?: unknown) {
  const res = await fetch(`${edge!.url}${path}`, {
    method,
    headers: { authorization: `Bearer ${edge!.adminToken}`, "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const json = await res.json();
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${JSON.stringify(json)}`);
  return json;
}

async function main() {
  console.log("wanwatch demo — SIMULATION MODE: the edge is real (workerd, locally); the two uplinks,");
  console.log("the probes and the servers are simulated in this process (switch backend: none).\n");
  const stateDir = join(root, ".state/demo");
  rmSync(stateDir, { recursive: true, force: true });
  edge = await startLocalEdge({ stateDir, publicStatus: true });
  say(`edge running at ${edge.url}`);
  await admin("PUT", `/v1/sites/${SITE}`, {
    uplinks: [{ id: "isp1", priority: 1, name: "Fiber" }, { id: "isp2", priority: 2, name: "LTE", metered: true }],
    policy,
    tunnels: { restart: "cluster" },
  });
  const world: World = { up: { isp1: true, isp2: true }, publicIp: { isp1: "203.0.113.1", isp2: "203.0.113.2" } };
  const hooks = {
    onApply: (a: SimAgent, d: { generation: number; activeUplink: string }) => say(`${a.id}: default route → ${d.activeUplink} (generation ${d.generation})`),
    onRestart: (a: SimAgent, d: { generation: number; activeUplink: string }) => say(`${a.id}: tunnels restarted, reconnecting through ${d.activeUplink}`),
  };
  const agents: SimAgent[] = [];
  for (const [id, role, uplink, tunnelRestarter] of [
    ["sbc1", "probe", "isp1", false], ["sbc2", "probe", "isp2", false], ["srv1", "server", undefined, true], ["srv2", "server", undefined, false],
  ] as const) {
    const { secret } = await admin("POST", `/v1/sites/${SITE}/agents`, { id, role, uplink, tunnelRestarter: tunnelRestarter || undefined });
    agents.push(await SimAgent.create(edge.url, SITE, id, uplink ? [uplink] : ["isp1", "isp2"], secret, hooks));
  }
  say(`site "${SITE}" enrolled: probes sbc1 (isp1), sbc2 (isp2); servers srv1 (tunnel restarter), srv2`);
  say(`status: ${edge.url}/v1/sites/${SITE}/status   events: ${edge.url}/v1/sites/${SITE}/events`);

  let seen = 0;
  const narrate = async () => {
    const events = (await (await fetch(`${edge!.url}/v1/sites/${SITE}/events?limit=200`)).json()) as { seq: number; kind: string; message: string }[];
    for (const e of events.reverse()) if (e.seq > seen && !["agent-enrolled", "config", "applied", "tunnels-restarted"].includes(e.kind)) say(`edge: ${e.message}`);
    seen = Math.max(seen, ...events.map((e) => e.seq));
  };
  const tick = async () => {
    await Promise.all(agents.map((a) => a.beat(world)));
    await narrate();
  };
  const runFor = async (ms: number, until?: () => Promise<boolean>) => {
    const end = Date.now() + ms;
    while (!stopping && Date.now() < end) {
      const started = Date.now();
      await tick();
      if (until && (await until())) return true;
      await new Promise((r) => setTimeout(r, Math.max(0, policy.heartbeatMs - (Date.now() - started))));
    }
    return false;
  };
  const active = async () => ((await (await fetch(`${edge!.url}/v1/sites/${SITE}/status`)).json()) as { activeUplink: string | null }).activeUplink;

  await runFor(6_000);
  say("✂  cutting isp1's uplink (its router and LAN stay up: the case Linux cannot handle alone)");
  world.up.isp1 = false;
  const cutAt = Date.now();
  await runFor(20_000, async () => (await active()) === "isp2" && agents.every((a) => a.uplinks.length === 1 || a.applied === 2) && agents.some((a) => a.tunnels === 2));
  say(`→ failover complete ${((Date.now() - cutAt) / 1000).toFixed(1)} s after the cut (policy floor: downAfterMs ${policy.downAfterMs / 1000} s + one heartbeat)`);
  await runFor(4_000);
  say("🔌 isp1 is back; the edge holds the backup for failbackAfterMs before returning");
  world.up.isp1 = true;
  const backAt = Date.now();
  await runFor(40_000, async () => (await active()) === "isp1" && agents.some((a) => a.tunnels === 3));
  say(`→ failback complete ${((Date.now() - backAt) / 1000).toFixed(1)} s after isp1 returned (hold-down ${policy.failbackAfterMs / 1000} s)`);
  await runFor(2_000);
  say("done. Next: the lab topology in network namespaces (root on Linux) runs the real agent; see the README.");
  await cleanup(0);
}

main().catch(async (err) => {
  console.error(`demo failed: ${(err as Error).message}`);
  await cleanup(1);
});
