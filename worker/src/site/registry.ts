// The site's enrolled agents, one entry each holding everything kept about it (row, keys, rate
// bucket, last push, rejection log): revoking an agent deletes its entry, and nothing of it stays.
import {
  CLOSE_REVOKED,
  deriveSigningKey,
  importSigningKey,
  newSecret,
  type EnrollRequest,
  type RotateRequest,
  type RotateResponse,
  type SigningKey,
} from "#shared";
import type { Family } from "../attribution.ts";
import { fail, ok, type Failure, type Result } from "../failure.ts";
import { emptyRuntime, type AgentRow, type AgentRuntime, type SiteStore } from "../store.ts";
import type { ConfiguredSite } from "./configured.ts";
import type { NewEvent } from "./events.ts";
import type { Sockets } from "./sockets.ts";

/** Agents one site may enrol: bounds the memory and rows every agent costs. */
export const MAX_AGENTS = 100;
/** A rejected heartbeat is recorded once per agent and reason in this time: anyone can send one. */
const REJECTION_LOG_MS = 5 * 60_000;

export interface AgentEntry {
  row: AgentRow;
  key: SigningKey;
  /** The key of the secret being rotated out, while its grace lasts. */
  previous: SigningKey | null;
  /** Runtime fields changed since the last checkpoint. */
  dirty: boolean;
  /** Message tokens left per family, and when they were counted (see Authenticator.withinRate). */
  buckets: Partial<Record<Family, { tokens: number; at: number }>>;
  /** The directive last sent unasked, to push only changes. */
  pushed: string | null;
  /** When a rejection was last recorded, per reason. */
  rejectionLoggedAt: Map<string, number>;
}

/** Names a key in socket tags without holding it: a prefix of the derived key, never sent anywhere. */
export const keyId = (signingKey: string) => signingKey.slice(0, 8);

async function entryFor(row: AgentRow): Promise<AgentEntry> {
  const key = await importSigningKey(row.signingKey);
  const previous = row.previousKey ? await importSigningKey(row.previousKey) : null;
  return { row, key, previous, dirty: false, buckets: {}, pushed: null, rejectionLoggedAt: new Map() };
}

const notFound = (site: string, agentId: string) =>
  fail(404, "agent_not_found", `no agent "${agentId}" in site "${site}"`);

export class AgentRegistry {
  private readonly entries = new Map<string, AgentEntry>();

  constructor(
    private readonly store: SiteStore,
    private readonly sockets: Sockets,
  ) {}

  async load(): Promise<void> {
    for (const row of this.store.agents()) this.entries.set(row.id, await entryFor(row));
  }

  get(id: string): AgentEntry | undefined {
    return this.entries.get(id);
  }

  all(): AgentEntry[] {
    return [...this.entries.values()];
  }

  rows(): AgentRow[] {
    return this.all().map((a) => a.row);
  }

  /** Why this agent cannot be enrolled in the site now, if it cannot. */
  refusal(site: ConfiguredSite, req: EnrollRequest): { ok: false; failure: Failure } | null {
    if (req.uplink && !site.config.uplinks.some((u) => u.id === req.uplink))
      return fail(400, "validation_failed", "invalid agent", [
        { path: "uplink", message: `no uplink "${req.uplink}" in the site config` },
      ]);
    if (this.entries.has(req.id))
      return fail(
        409,
        "agent_exists",
        `agent "${req.id}" is already enrolled in site "${site.id}": for a new secret run wanwatch site enroll --id ${req.id} --rotate --site ${site.id}`,
      );
    if (this.entries.size >= MAX_AGENTS)
      return fail(
        409,
        "too_many_agents",
        `site "${site.id}" already has ${MAX_AGENTS} agents, the most a site may have: revoke one first`,
      );
    return null;
  }

  /**
   * Enrols an agent with a fresh secret. `claim`, when given, runs in the same transaction just
   * before the agent is saved (an enrolment token marked used): it may refuse, and then nothing is
   * written. Everything after the key derivation is synchronous, so no other request interleaves.
   */
  async enroll(
    site: ConfiguredSite,
    req: EnrollRequest,
    now: number,
    claim: () => Result<NewEvent[]> = () => ok([]),
  ): Promise<Result<{ id: string; secret: string }>> {
    const early = this.refusal(site, req);
    if (early) return early;
    const secret = newSecret();
    const row: AgentRow = {
      id: req.id,
      role: req.role,
      uplink: req.uplink ?? null,
      tunnelRestarter: req.tunnelRestarter ?? false,
      signingKey: await deriveSigningKey(secret),
      previousKey: null,
      previousUntil: null,
      createdAt: now,
      runtime: emptyRuntime(),
    };
    const entry = await entryFor(row);
    // After the awaits: another request may have enrolled it, or consumed the claim, meanwhile.
    const late = this.refusal(site, req);
    if (late) return late;
    const placement = `${req.role}${req.uplink ? ` behind ${req.uplink}` : ""}`;
    const done = this.store.transaction((): Result<null> => {
      const claimed = claim();
      if (!claimed.ok) return claimed;
      this.store.saveAgent(row);
      this.store.appendEvents([
        {
          at: now,
          kind: "agent-enrolled",
          message: `agent ${req.id} enrolled (${placement})`,
          data: { agent: req.id },
        },
        ...claimed.value,
      ]);
      return ok(null);
    });
    if (!done.ok) return done;
    this.entries.set(row.id, entry);
    return ok({ id: req.id, secret });
  }

  /**
   * A new secret for an enrolled agent. The one it replaces keeps working for the grace (so the
   * agent can be given the new one and restarted without a gap) and retires as soon as the agent
   * signs with the new one.
   */
  async rotate(
    site: ConfiguredSite,
    agentId: string,
    req: RotateRequest,
    clock: () => number,
  ): Promise<Result<RotateResponse>> {
    const agent = this.entries.get(agentId);
    if (!agent) return notFound(site.id, agentId);
    const secret = newSecret();
    const signingKey = await deriveSigningKey(secret);
    const key = await importSigningKey(signingKey);
    // After the awaits the agent may be gone, or rotated meanwhile: act on what is there now.
    if (this.entries.get(agentId) !== agent) return notFound(site.id, agentId);
    const now = clock();
    const until = req.graceSeconds > 0 ? now + req.graceSeconds * 1000 : null;
    const row: AgentRow = {
      ...agent.row,
      signingKey,
      previousKey: until ? agent.row.signingKey : null,
      previousUntil: until,
    };
    const old = until
      ? `the old one works until ${new Date(until).toISOString()} or until the agent signs with the new one`
      : "the old one is refused from now on";
    this.store.transaction(() => {
      this.store.saveAgentKeys(row);
      this.store.appendEvents([
        {
          at: now,
          kind: "agent-rotated",
          message: `agent ${agentId}: new secret issued; ${old}`,
          data: { agent: agentId, previousValidUntil: until },
        },
      ]);
    });
    agent.previous = until ? agent.key : null;
    agent.row = row;
    agent.key = key;
    // Sockets of a key now neither current nor in its grace (a second rotation, or no grace).
    this.closeRetiredKeySockets(agent);
    return ok({ id: agentId, secret, previousValidUntil: until });
  }

  revoke(site: ConfiguredSite, agentId: string, now: number): Result<{ id: string; revoked: true }> {
    if (!this.entries.has(agentId)) return notFound(site.id, agentId);
    this.store.transaction(() => {
      this.store.deleteAgent(agentId);
      this.store.appendEvents([
        { at: now, kind: "agent-revoked", message: `agent ${agentId} revoked`, data: { agent: agentId } },
      ]);
    });
    this.entries.delete(agentId);
    this.sockets.closeAgent(agentId, CLOSE_REVOKED, "agent revoked");
    return ok({ id: agentId, revoked: true });
  }

  /** A rotation's grace that has run out ends now: the old key, its sockets and its pushes go. */
  expireRotation(agent: AgentEntry, now: number): void {
    if (agent.previous && agent.row.previousUntil !== null && now >= agent.row.previousUntil)
      this.retirePreviousKey(agent, now, "expired");
  }

  /** The old secret stops working: the agent signed with the new one, or the grace ran out. */
  retirePreviousKey(agent: AgentEntry, now: number, why: "used" | "expired"): void {
    agent.row = { ...agent.row, previousKey: null, previousUntil: null };
    agent.previous = null;
    const id = agent.row.id;
    const message =
      why === "used"
        ? `agent ${id} signs with its new secret; the old one is refused from now on`
        : `agent ${id}: the grace of its old secret ran out; the old one is refused from now on`;
    this.store.transaction(() => {
      this.store.saveAgentKeys(agent.row);
      this.store.appendEvents([{ at: now, kind: "agent-rotation-done", message, data: { agent: id, why } }]);
    });
    this.closeRetiredKeySockets(agent);
  }

  /** A config that drops the uplink a probe sits behind is refused: the probe must be revoked first. */
  probeBehindAny(uplinks: ReadonlySet<string>): { ok: false; failure: Failure } | null {
    const row = this.rows().find((r) => r.uplink && !uplinks.has(r.uplink));
    return row
      ? fail(
          409,
          "uplink_in_use",
          `probe "${row.id}" sits behind uplink "${row.uplink}", which this config removes: revoke it first`,
        )
      : null;
  }

  /**
   * Puts a refused heartbeat of an enrolled agent on the timeline (a wrong clock, a stale secret,
   * a replay), at most once per agent and reason per REJECTION_LOG_MS; ids nobody enrolled are
   * not recorded, since anyone can invent them. Returns whether it did.
   */
  recordRejection(agentId: string, failure: Failure, now: number): boolean {
    const agent = this.entries.get(agentId);
    if (!agent || now - (agent.rejectionLoggedAt.get(failure.code) ?? -Infinity) < REJECTION_LOG_MS) return false;
    agent.rejectionLoggedAt.set(failure.code, now);
    const { code, message } = failure;
    this.store.appendEvents([
      {
        at: now,
        kind: "heartbeat-rejected",
        message: `${agentId}: heartbeat rejected (${code}): ${message}`,
        data: { agent: agentId, code },
      },
    ]);
    return true;
  }

  /** When rotations' graces run out. */
  rotationDeadlines(): number[] {
    return this.all().flatMap((a) => (a.previous && a.row.previousUntil !== null ? [a.row.previousUntil] : []));
  }

  /** A transition's new runtime, written inside its transaction. */
  saveRuntime(id: string, runtime: AgentRuntime): void {
    const agent = this.entries.get(id);
    if (!agent) return;
    agent.row = { ...agent.row, runtime };
    this.store.saveAgentRuntime(id, runtime);
  }

  /** A heartbeat's new runtime: written now when a restart must not lose it, else by the next checkpoint. */
  heard(agent: AgentEntry, runtime: AgentRuntime, persist: boolean): void {
    agent.row = { ...agent.row, runtime };
    agent.dirty = !persist;
    if (persist) this.store.saveAgentRuntime(agent.row.id, runtime);
  }

  /** Closes the agent's sockets opened with a key it no longer has (neither current nor in its grace). */
  private closeRetiredKeySockets(agent: AgentEntry): void {
    const held = [agent.row.signingKey, ...(agent.row.previousKey ? [agent.row.previousKey] : [])].map(keyId);
    for (const { ws, tag } of this.sockets.ofAgent(agent.row.id))
      if (!tag || !held.includes(tag.keyId)) ws.close(CLOSE_REVOKED, "secret rotated");
  }
}
