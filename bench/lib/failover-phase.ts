// One direction of a failover on a lab site (lab/site.ts): break or mend the primary, then time
// detection at the edge, routes on every server (agents' logs), tunnels through the new uplink and
// IPv6. Shared by bench:failover and bench:peers.
import type { SiteStatus } from "#shared";
import { type LabSite, settled } from "../../lab/site.ts";
import { prefix6, publicAddress } from "../../lab/topology.ts";

export interface Phase {
  detect: number;
  routes: number;
  tunnels: number;
  /** Until every server's new IPv6 connections leave with the new uplink's prefix (null: no IPv6 in the lab). */
  ipv6: number | null;
  /** The uplink was taken down on servers' witness reports, before downAfterMs. */
  witnessed: boolean;
  /** Per server, ms from the act: where its share of the time went. */
  servers: Record<string, ServerSteps>;
}

/** One server's path after the edge's decision, each step in ms from the act (the cut or the restore). */
export interface ServerSteps {
  /** The agent began applying the directive (it had it). */
  applying: number;
  /** Its routes switched and verified (`ip route get` to the edge through the new uplink). */
  routed: number;
  /** Its restart counted as done (the command returned and the tunnel's readiness check passed). */
  restarted: number;
  /** Its tunnel said hello to the endpoint from the new uplink's public address. */
  tunnel: number;
}

/** The policy flags of the lab benchmarks, with the lab's fast defaults. */
export const POLICY_FLAGS = {
  "heartbeat-ms": { type: "string", default: "500" },
  "down-after-ms": { type: "string", default: "1500" },
  "failback-after-ms": { type: "string", default: "4000" },
} as const;

/** The site policy those flags give (no minimum dwell: each cut is measured on its own). */
export const policyOf = (v: { "heartbeat-ms": string; "down-after-ms": string; "failback-after-ms": string }) => ({
  heartbeatMs: Number(v["heartbeat-ms"]),
  downAfterMs: Number(v["down-after-ms"]),
  failbackAfterMs: Number(v["failback-after-ms"]),
  minDwellMs: 0,
});

/**
 * The pause before a cut: two heartbeats for the site to settle, then a random part of one more, so
 * cuts fall at every phase of the agents' heartbeats. A fixed pause after a settled site puts every
 * cut at about the same phase, and the median then measures that phase, not the system.
 */
export const beforeCut = (heartbeatMs: number) => new Promise((r) => setTimeout(r, (2 + Math.random()) * heartbeatMs));

export const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
export const sec = (ms: number) => (ms / 1000).toFixed(2).padStart(6);

/** One direction: `act` breaks or mends the primary; measures until every server and tunnel follows. */
export async function phase(
  s: LabSite,
  servers: string[],
  act: () => Promise<void>,
  to: "isp1" | "isp2",
  reason: "failover" | "failback",
): Promise<Phase> {
  const t0 = Date.now();
  await act();
  const done: SiteStatus = await s.until(
    (st) => st.activeUplink === to && settled(st, servers),
    `${reason} to ${to}`,
    60_000,
    50,
  );
  const sw = (await s.events()).find(
    (e) => e.kind === "switch" && e.at >= t0 && (e.data as { reason?: string }).reason === reason,
  );
  if (!sw) throw new Error(`no ${reason} event after the cut`);
  const logged = (id: string, ...msgs: string[]) => {
    const l = s.log(id).find((l) => msgs.includes(l.msg) && l.generation === done.generation);
    if (!l) throw new Error(`${id} did not log "${msgs[0]}" for generation ${done.generation}`);
    return Date.parse(l.time) - t0;
  };
  const routed = servers.map((id) => logged(id, "routes switched", "routes already right"));
  // Each server's tunnel reconnects once; the endpoint sees it from the new uplink's public address.
  const via = publicAddress(to === "isp1" ? 1 : 2);
  const deadline = Date.now() + 20_000;
  let conns = s.tunnelConnects().filter((c) => c.at >= t0 && c.remote === via);
  while (conns.length < servers.length && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 50));
    conns = s.tunnelConnects().filter((c) => c.at >= t0 && c.remote === via);
  }
  if (conns.length < servers.length) throw new Error(`only ${conns.length} tunnels reconnected through ${to}`);
  const prefix = `${prefix6(to === "isp1" ? 1 : 2)}:`;
  // Short attempts: one sent from the dead uplink's address hangs, and would hide when the next one works.
  const ipv6Done = async () =>
    (await Promise.all(servers.map((id) => s.ipv6Source(id, 1_000).catch(() => "")))).every((a) =>
      a.startsWith(prefix),
    );
  let ipv6: number | null = null;
  if (s.lab.dhcp) {
    while (!(await ipv6Done())) if (Date.now() - t0 > 60_000) throw new Error(`IPv6 did not follow to ${to}`);
    ipv6 = Date.now() - t0;
  }
  const hello = (id: string) => s.tunnelHellos().find((h) => h.name === id && h.at >= t0 && h.remote === via)?.at;
  const steps = Object.fromEntries(
    servers.map((id, i) => [
      id,
      {
        applying: logged(id, "applying directive"),
        routed: routed[i]!,
        restarted: logged(id, "tunnels restarted"),
        tunnel: (hello(id) ?? Number.NaN) - t0,
      },
    ]),
  );
  const witnessed = (await s.events()).some(
    (e) => e.kind === "uplink" && e.at >= t0 && !!(e.data as { witnesses?: string[] }).witnesses,
  );
  return {
    ipv6,
    witnessed,
    servers: steps,
    detect: sw.at - t0,
    routes: Math.max(...routed),
    tunnels: Math.max(...conns.slice(0, servers.length).map((c) => c.at)) - t0,
  };
}
