// A site of agents simulated at the level of messages, for the witness properties: each agent beats
// through each of its uplinks once a heartbeat at a phase of its own, a fault decides which beats
// arrive and when, and each server behaves as the agent does (a beat through isp1 not answered
// within 300 ms, while isp2 answers, is reported through isp2 at once and with every isp2 beat
// until isp1 answers again). The result is the edge's view as acts, and the truth to judge it by.
import fc from "fast-check";
import { WITNESS_CONFIRM_MS } from "#shared";
import { T0, type Act } from "./decision-harness.ts";

export const BOUND_MS = 300;
const RTT_MS = 10;

export type Fault =
  /** isp1 dead for everyone from `at` on. */
  | { kind: "cut"; at: number }
  /** `servers` servers lose their isp1 path (a LAN port, a cable) from `at` on. */
  | { kind: "lan-down"; at: number; servers: number }
  /** isp1's probe dies at `at`. */
  | { kind: "probe-dead"; at: number }
  /** From `at`, each isp1 beat is late by the TCP resends a lossy link costs (0, 1 or 2 resends). */
  | { kind: "lossy"; at: number; resends: number[] }
  /** From `at`, every isp1 beat is `delayMs` later. */
  | { kind: "slow"; at: number; delayMs: number };

export interface SiteParams {
  servers: number;
  /** Per stream (agent × uplink), its phase within the heartbeat. */
  phases: number[];
  jitter: number[];
  fault: Fault;
  /** `since` as the agent's clock says it: off by this much (clock skew the offset did not catch). */
  skewMs: number;
  restarts: number[];
}

export interface Delivery {
  at: number;
  agent: string;
  uplink: string;
  /** When the agent sent it. */
  sent: number;
  unanswered: { uplink: string; since: number }[];
}

export interface Simulated {
  acts: Act[];
  deliveries: Delivery[];
}

const SECONDS = 30;

/** Which isp1 beats of `agent` arrive, and how late, under the fault. */
function isp1Delay(f: Fault, agent: string, sent: number, k: number): number | null {
  if (sent < f.at) return RTT_MS / 2;
  switch (f.kind) {
    case "cut":
      return null;
    case "lan-down":
      return Number(agent.replace("srv", "")) <= f.servers ? null : RTT_MS / 2;
    case "probe-dead":
      return agent === "probe1" ? null : RTT_MS / 2;
    case "lossy": {
      // Linux resends a lost segment after 200 ms, then 400 ms more.
      const n = f.resends[k % f.resends.length]!;
      return RTT_MS / 2 + [0, 200, 600][n]!;
    }
    case "slow":
      return RTT_MS / 2 + f.delayMs;
  }
}

export function simulate(p: SiteParams): Simulated {
  const servers = Array.from({ length: p.servers }, (_, i) => `srv${i + 1}`);
  const streams = [
    { agent: "probe1", uplink: "isp1" },
    { agent: "probe2", uplink: "isp2" },
    ...servers.flatMap((agent) => [
      { agent, uplink: "isp1" },
      { agent, uplink: "isp2" },
    ]),
  ];
  const deliveries: Delivery[] = [];
  // Per server: its isp1 beats (sent, arrival or null), to know what it has seen answered when.
  const isp1 = new Map<string, { sent: number; arrives: number | null }[]>();
  streams.forEach((s, i) => {
    if (s.uplink !== "isp1") return;
    const beats = [];
    for (let k = 0; k < SECONDS; k++) {
      const sent = T0 + 1_000 + k * 1_000 + p.phases[i % p.phases.length]! + p.jitter[(i + k) % p.jitter.length]!;
      const d = isp1Delay(p.fault, s.agent, sent, k + i);
      beats.push({ sent, arrives: d === null ? null : sent + d });
    }
    isp1.set(s.agent, beats);
    for (const b of beats)
      if (b.arrives !== null)
        deliveries.push({ at: b.arrives, agent: s.agent, uplink: "isp1", sent: b.sent, unanswered: [] });
  });
  /** Per isp1 beat, when the agent gives up waiting: max(300 ms, 3 × the slowest answer of its last minute). */
  const deadline = new Map<string, number[]>();
  for (const [agent, beats] of isp1) {
    const answered = beats.map((b) => (b.arrives === null ? null : b.arrives + RTT_MS / 2));
    deadline.set(
      agent,
      beats.map((b) => {
        const rtts = beats.flatMap((o, j) => {
          const at = answered[j];
          return at != null && at <= b.sent && at > b.sent - 60_000 ? [at - o.sent] : [];
        });
        return b.sent + Math.max(BOUND_MS, 3 * Math.max(0, ...rtts));
      }),
    );
  }
  /** The first isp1 beat of `agent` unanswered past its deadline and not followed by any answer by `t`. */
  const unansweredSince = (agent: string, t: number): number | null => {
    let since: number | null = null;
    const beats = isp1.get(agent) ?? [];
    const due = deadline.get(agent)!;
    for (const [j, b] of beats.entries()) {
      if (b.sent > t) break;
      const answeredAt = b.arrives === null ? null : b.arrives + RTT_MS / 2;
      if (answeredAt !== null && answeredAt <= t) since = null;
      else if (since === null && due[j]! <= t) since = b.sent;
    }
    return since;
  };
  const isp2Beat = (agent: string, sent: number) => {
    const since = agent.startsWith("srv") ? unansweredSince(agent, sent) : null;
    deliveries.push({
      at: sent + RTT_MS / 2,
      agent,
      uplink: "isp2",
      sent,
      unanswered: since === null ? [] : [{ uplink: "isp1", since: since + p.skewMs }],
    });
  };
  streams.forEach((s, i) => {
    if (s.uplink !== "isp2") return;
    for (let k = 0; k < SECONDS; k++)
      isp2Beat(s.agent, T0 + 1_000 + k * 1_000 + p.phases[i % p.phases.length]! + p.jitter[(i + k) % p.jitter.length]!);
  });
  // The report at once, the moment a beat counts as unanswered, and again once it has stood.
  for (const agent of servers)
    for (const [j, b] of isp1.get(agent)!.entries()) {
      const t = deadline.get(agent)![j]!;
      if (unansweredSince(agent, t) !== b.sent) continue;
      isp2Beat(agent, t);
      if (unansweredSince(agent, t + WITNESS_CONFIRM_MS) === b.sent) isp2Beat(agent, t + WITNESS_CONFIRM_MS);
    }
  deliveries.sort((a, b) => a.at - b.at || a.sent - b.sent);
  const acts: Act[] = deliveries.map((d) => ({
    at: d.at,
    kind: "beat",
    uplink: d.uplink,
    ...(d.agent.startsWith("srv") ? { witness: { agent: d.agent, unanswered: d.unanswered } } : {}),
  }));
  for (const r of p.restarts) acts.push({ at: r, kind: "restart" });
  acts.sort((a, b) => a.at - b.at);
  return { acts, deliveries };
}

const at = fc.integer({ min: T0 + 8_000, max: T0 + 20_000 });

export const faults = {
  cut: fc.record({ kind: fc.constant("cut" as const), at }),
  "lan-down": fc.record({ kind: fc.constant("lan-down" as const), at, servers: fc.constant(1) }),
  "probe-dead": fc.record({ kind: fc.constant("probe-dead" as const), at }),
  lossy: fc.record({
    kind: fc.constant("lossy" as const),
    at,
    // 35 % loss: a beat needs one resend 35 % of the time, two 12 %.
    resends: fc.array(fc.constantFrom(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 2, 2), {
      minLength: 40,
      maxLength: 40,
    }),
  }),
  // Up to the agent's bound plus WITNESS_CONFIRM_MS: a step in latency larger than that is, for a
  // moment, an outage to any detector that answers within a second.
  slow: fc.record({ kind: fc.constant("slow" as const), at, delayMs: fc.integer({ min: 50, max: 490 }) }),
};

export const siteParams = (fault: fc.Arbitrary<Fault>): fc.Arbitrary<SiteParams> =>
  fc.record({
    servers: fc.integer({ min: 2, max: 4 }),
    phases: fc.array(fc.integer({ min: 0, max: 999 }), { minLength: 10, maxLength: 10 }),
    jitter: fc.array(fc.integer({ min: 0, max: 60 }), { minLength: 7, maxLength: 7 }),
    fault,
    skewMs: fc.oneof(fc.constant(0), fc.integer({ min: -120_000, max: 120_000 })),
    restarts: fc.array(fc.integer({ min: T0 + 5_000, max: T0 + 30_000 }), { maxLength: 2 }),
  });
