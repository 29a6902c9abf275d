// Who sent a message: its signature, its age, its novelty and its agent's rate, checked in that order.
import { MAX_SKEW_MS, parseMac, verify, type SigningKey } from "#shared";
import type { Family } from "../attribution.ts";
import { fail, ok, type Result } from "../failure.ts";
import type { ConfiguredSite } from "./configured.ts";
import { keyId, type AgentEntry, type AgentRegistry } from "./registry.ts";

/**
 * The replay guard lives in memory: after a wake, messages signed more than this before it are
 * refused, since the lost guard may have accepted them. (A message that wakes a hibernated object
 * was signed moments before it: the margin lets it through.)
 */
export const WAKE_REPLAY_MARGIN_MS = 5_000;
/**
 * Messages an agent may send per heartbeat interval and uplink it speaks on (4× what it needs:
 * reconnects and answers to directives come on top), plus a burst; beyond that, 429. Counted per
 * family: an agent's IPv6 channels (a second one per uplink) spend an allowance of their own, so a
 * flapping IPv6 path never throttles the IPv4 heartbeats that decide the uplink.
 */
const RATE_PER_UPLINK = 4;
const RATE_BURST = 20;

/** A signed message as it arrived: over HTTP, as a channel frame, or as a channel's upgrade. */
export interface SignedMessage {
  agent: string;
  ts: number;
  sig: string;
  body: string;
}

export interface Authenticated {
  agent: AgentEntry;
  /** The key that signed it: answers are signed with the same one. */
  key: SigningKey;
  /** That key's id, for socket tags. */
  keyId: string;
}

/** The MACs (as byte strings) accepted within the skew window, each with its expiry. */
class ReplayGuard {
  private readonly expiries = new Map<string, number>();

  has(mac: string): boolean {
    return this.expiries.has(mac);
  }

  /** Adds a MAC and drops the expired ones from the oldest on: the map holds one skew window at most. */
  add(mac: string, until: number, now: number): void {
    this.prune(now);
    this.expiries.set(mac, until);
  }

  /** Entries go in by expiry (now plus a constant), so the expired ones are at the front. */
  prune(now: number): void {
    for (const [mac, until] of this.expiries) {
      if (until > now) return;
      this.expiries.delete(mac);
    }
  }
}

const unknownAgent = (agentId: string) =>
  fail(401, "unknown_agent", `agent "${agentId}" is not enrolled in this site (or was revoked)`);

export class Authenticator {
  private readonly guard = new ReplayGuard();
  /** When the object woke: the replay guard knows nothing from before. */
  private wokeAt = 0;

  constructor(
    private readonly registry: AgentRegistry,
    /** Multiplies each agent's message allowance (the throughput benchmark lifts it). */
    private readonly rateFactor: number,
  ) {}

  woke(now: number): void {
    this.wokeAt = now;
  }

  /** Frees the memory of a guard no message has pruned for a while. */
  prune(now: number): void {
    this.guard.prune(now);
  }

  /** `family`: what the message travelled over (its allowance). */
  async authenticate(
    site: ConfiguredSite,
    m: SignedMessage,
    family: Family,
    now: number,
  ): Promise<Result<Authenticated>> {
    const agent = this.registry.get(m.agent);
    if (!agent) return unknownAgent(m.agent);
    if (!Number.isSafeInteger(m.ts) || Math.abs(m.ts - now) > MAX_SKEW_MS)
      return fail(
        401,
        "stale_timestamp",
        `timestamp ${m.ts} is more than ${MAX_SKEW_MS / 1000} s from edge time ${now}: correct the clock offset`,
      );
    // The replay guard is keyed by the MAC's bytes, and only their canonical spelling verifies:
    // no respelling of one signature is a new message.
    const bytes = parseMac(m.sig);
    if (!bytes) return fail(401, "bad_signature", "signature is not a 32-byte MAC in canonical base64url");
    const mac = String.fromCharCode(...bytes);
    this.registry.expireRotation(agent, now);
    const parts = { direction: "up" as const, site: site.id, agent: m.agent, ts: m.ts, body: m.body };
    // The keys as they are now: a rotation may land while we verify.
    const current = { key: agent.key, stored: agent.row.signingKey };
    const previous =
      agent.previous && agent.row.previousKey ? { key: agent.previous, stored: agent.row.previousKey } : null;
    const signedBy = (await verify(current.key, parts, m.sig))
      ? current
      : previous && (await verify(previous.key, parts, m.sig))
        ? previous
        : null;
    // Still enrolled, and still holding that key, after the awaits.
    if (this.registry.get(m.agent) !== agent) return unknownAgent(m.agent);
    if (!signedBy || (signedBy.key !== agent.key && signedBy.key !== agent.previous))
      return fail(401, "bad_signature", "signature does not match the message and the agent's key");
    if (this.guard.has(mac) || m.ts < this.wokeAt - WAKE_REPLAY_MARGIN_MS)
      return fail(
        409,
        "replayed",
        "this message was already accepted (or was signed before the edge restarted): sign a new one",
      );
    // Counted only once the signature holds: nobody else can spend an agent's allowance.
    if (!this.withinRate(site, agent, family, now))
      return fail(
        429,
        "rate_limited",
        `agent "${m.agent}" sends more than ${RATE_PER_UPLINK} messages per heartbeat interval and uplink: slow down`,
      );
    this.guard.add(mac, now + 2 * MAX_SKEW_MS, now);
    if (signedBy.key === agent.key && agent.previous) this.registry.retirePreviousKey(agent, now, "used");
    return ok({ agent, key: signedBy.key, keyId: keyId(signedBy.stored) });
  }

  /** A token bucket per agent and family, in memory. */
  private withinRate(site: ConfiguredSite, agent: AgentEntry, family: Family, now: number): boolean {
    const { policy, uplinks } = site.config;
    // Agents keep their own interval (1 s unless configured): a slower site policy must not throttle them.
    const intervalMs = Math.min(policy.heartbeatMs, 1_000);
    const perInterval = RATE_PER_UPLINK * (agent.row.role === "probe" ? 1 : uplinks.length) * this.rateFactor;
    const cap = perInterval + RATE_BURST;
    const b = agent.buckets[family] ?? { tokens: cap, at: now };
    const tokens = Math.min(cap, b.tokens + ((now - b.at) * perInterval) / intervalMs);
    const allowed = tokens >= 1;
    agent.buckets[family] = { tokens: allowed ? tokens - 1 : tokens, at: now };
    return allowed;
  }
}
