// One Durable Object per site: judges the uplinks from the heartbeats, decides the active one,
// and tells every agent. SQLite holds what must survive; memory holds liveness (rebuilt on wake).
import { DurableObject } from "cloudflare:workers";
import {
  Directive,
  EdgeMessage,
  Heartbeat,
  MAX_HEARTBEAT_BYTES,
  MAX_SKEW_MS,
  SignedFrame,
  acceptsNewFields,
  deriveSigningKey,
  fieldIssues,
  issueLines,
  importSigningKey,
  newSecret,
  parseMac,
  sign,
  verify,
  HEADER_SIG,
  HEADER_TS,
  HEADER_UPLINK,
  type EnrollRequest,
  type LiveMessage,
  type OverrideRequest,
  type RotateRequest,
  type RotateResponse,
  type SigningKey,
  type SiteConfig,
  type SiteEvent,
  type SiteStatus,
  type SiteSummary,
  type UplinkAvailability,
} from "../../shared/src/index.ts";
import { attribute, type Observed } from "./attribution.ts";
import { AVAILABILITY_WINDOW_MS, availability } from "./availability.ts";
import {
  PATH_REPORT_STALE_MS,
  initialState,
  nextDeadline,
  reshapedState,
  restoredState,
  siteMode,
  step,
  type DecisionEvent,
  type DecisionState,
  type Effect,
  type SiteShape,
} from "./engine/decision.ts";
import { planTunnels, restartFor, tunnelDeadline, type ServerView, type TunnelEffect, type TunnelPlan } from "./engine/tunnels.ts";
import type { Env } from "./env.ts";
import { fail, ok, type Failure, type Result } from "./failure.ts";
import { failureResponse } from "./http/respond.ts";
import { renderMetrics } from "./metrics.ts";
import { deliver } from "./notify/deliver.ts";
import { notificationsFor } from "./notify/notification.ts";
import { agentStaleAfterMs, buildStatus, cutOffUplinks, heardWithin, isLive } from "./status.ts";
import { SiteStore, emptyRuntime, type AgentRow, type AgentRuntime, type NewEvent, type UplinkObservation } from "./store.ts";

/** How often liveness details (last seen, RTT) are checkpointed to SQLite: rows written cost money. */
const CHECKPOINT_MS = 5 * 60_000;
/** How late the backstop alarm may judge a site silent on every uplink: 4 × downAfterMs, at most a minute. */
export const silenceBackstopMs = (downAfterMs: number) => Math.min(4 * downAfterMs, 60_000);
/** Agents one site may enrol: bounds the memory and rows every agent costs. */
export const MAX_AGENTS = 100;
/**
 * Messages an agent may send per heartbeat interval and uplink it speaks on (4× what it needs:
 * reconnects and answers to directives come on top), plus a burst; beyond that, 429.
 */
const RATE_PER_UPLINK = 4;
const RATE_BURST = 20;
/**
 * The replay guard lives in memory: after a wake, messages signed more than this before it are
 * refused, since the lost guard may have accepted them. (A message that wakes a hibernated object
 * was signed moments before it: the margin lets it through.)
 */
export const WAKE_REPLAY_MARGIN_MS = 5_000;
/** WebSocket close code for a revoked agent. */
export const CLOSE_REVOKED = 4401;
const CLOSE_REPLACED = 4409;
/** Socket tag of status pages; "#" keeps it apart from every agent id. */
const VIEWER_TAG = "#viewer";
/** Status pages get state at most this often when nothing was recorded (changes go at once). */
const VIEWER_PUSH_MS = 1_000;
/** Events a status page starts with. */
const SNAPSHOT_EVENTS = 50;
export const MAX_VIEWERS = 100;
/** A rejected heartbeat is recorded once per agent and reason in this time: anyone can send one. */
const REJECTION_LOG_MS = 5 * 60_000;
/** Notifications sent per alarm at most (each is a subrequest; an invocation may make 1,000). */
const NOTIFY_BATCH = 50;

interface LiveAgent {
  row: AgentRow;
  key: SigningKey;
  /** The key of the secret being rotated out, while its grace lasts. */
  previous: SigningKey | null;
  /** Runtime fields changed since the last checkpoint. */
  dirty: boolean;
}

/** What a status page's socket carries through hibernation. */
interface ViewerTag {
  viewer: true;
}

/** Per-socket facts that must survive hibernation. */
interface SocketTag {
  agent: string;
  uplink: string;
  /** Which of the agent's keys opened it (see keyId): pushes are signed with it; closed when it retires. */
  keyId: string;
  ip: string | null;
  asn: number | null;
}

export interface SignedReply {
  body: string;
  ts: number;
  sig: string;
}

/** A heartbeat as the Worker received it over HTTP: the signed parts plus what the edge saw. */
export interface HeartbeatRequest {
  agent: string;
  ts: number;
  sig: string;
  body: string;
  seen: Observed;
}

export class SiteCoordinator extends DurableObject<Env> {
  private readonly store: SiteStore;
  private site: string | null = null;
  private config: SiteConfig | null = null;
  private decision: DecisionState | null = null;
  private plan: TunnelPlan | null = null;
  private readonly agents = new Map<string, LiveAgent>();
  private readonly observations = new Map<string, UplinkObservation>();
  /** Public address last seen per uplink from any agent's evidence (status only). */
  private readonly lastEvidenceIp = new Map<string, string>();
  /** Replay guard: the MACs (as byte strings) accepted within the skew window, with their expiry. */
  private readonly accepted = new Map<string, number>();
  /** Last directive sent unasked to each agent, to push only changes. */
  private readonly pushed = new Map<string, string>();
  private alarmAt: number | null = null;
  private lastCheckpointAt = 0;
  /** Newest event the status pages have been sent, and when they were last sent anything. */
  private viewerSeq = 0;
  private viewerPushAt = 0;
  /** When the object last woke: agents' last-seen times are only checkpoints until then. */
  private loadedAt = 0;
  /** Earliest notification due, kept here so scheduling costs no query. */
  private outboxNextAt: number | null = null;
  private delivering = false;
  /** When a rejection was last recorded, per agent and reason. */
  private readonly rejectionLoggedAt = new Map<string, number>();
  /** When each status page last asked for a refresh. */
  private readonly refreshedAt = new WeakMap<WebSocket, number>();
  /** Per agent: message tokens left, and when they were counted (a token bucket, in memory). */
  private readonly buckets = new Map<string, { tokens: number; at: number }>();
  /** Billable work since the object woke, besides SQLite rows (the store counts those). */
  private readonly usage = { alarmsSet: 0, alarmRuns: 0, webSocketMessages: 0 };

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.store = new SiteStore(ctx.storage);
    // Every entry point (fetch, RPC, webSocketMessage, alarm) may be the first after a wake.
    void ctx.blockConcurrencyWhile(() => this.load());
  }

  private async load(): Promise<void> {
    const now = Date.now();
    this.loadedAt = now;
    this.lastCheckpointAt = now;
    this.alarmAt = await this.ctx.storage.getAlarm();
    // Anyone can name a site in a URL: an object nobody configured must store nothing at all.
    if (!this.store.initialized()) return;
    this.store.migrate();
    this.site = this.store.site();
    this.config = this.store.config();
    this.plan = this.store.tunnelPlan();
    for (const row of this.store.agents()) this.agents.set(row.id, await liveAgent(row));
    for (const o of this.store.observations()) this.observations.set(o.id, o);
    this.store.loadNewestSeq();
    this.viewerSeq = this.store.newestSeq;
    this.outboxNextAt = this.store.nextNotificationAt();
    if (this.config) {
      const saved = this.store.decision();
      this.decision = saved ? restoredState(saved, this.config, now) : initialState(this.config, now);
    }
    await this.schedule(now);
  }

  private shape(): SiteShape {
    return this.config!;
  }

  private requireSite(site: string): Result<SiteConfig> {
    if (!this.config || this.site !== site) return fail(404, "site_not_found", `site "${site}" has no config yet: PUT /v1/sites/${site} first`);
    return ok(this.config);
  }

  // ---- admin RPC ------------------------------------------------------------------------------

  async putConfig(site: string, config: SiteConfig): Promise<Result<SiteConfig>> {
    const now = Date.now();
    const ids = new Set(config.uplinks.map((u) => u.id));
    for (const { row } of this.agents.values())
      if (row.uplink && !ids.has(row.uplink))
        return fail(409, "uplink_in_use", `probe "${row.id}" sits behind uplink "${row.uplink}", which this config removes: revoke it first`);
    const replaced = this.config !== null;
    if (!replaced) this.store.migrate();
    this.site = site;
    this.config = config;
    this.decision = this.decision ? reshapedState(this.decision, config, now) : initialState(config, now);
    this.store.transaction(() => {
      this.store.saveSite(site, config);
      this.store.saveDecision(this.decision!);
      this.store.appendEvents([{ at: now, kind: "config", message: replaced ? "site config replaced" : "site created", data: { uplinks: [...ids] } }]);
    });
    await this.advance({ kind: "tick" }, now);
    return ok(config);
  }

  async getConfig(site: string): Promise<Result<SiteConfig>> {
    return this.requireSite(site);
  }

  async enroll(site: string, req: EnrollRequest): Promise<Result<{ id: string; secret: string }>> {
    const found = this.requireSite(site);
    if (!found.ok) return found;
    if (req.uplink && !found.value.uplinks.some((u) => u.id === req.uplink))
      return fail(400, "validation_failed", "invalid agent", [{ path: "uplink", message: `no uplink "${req.uplink}" in the site config` }]);
    if (this.agents.has(req.id)) return fail(409, "agent_exists", `agent "${req.id}" is already enrolled: revoke it first to issue a new secret`);
    if (this.agents.size >= MAX_AGENTS) return fail(409, "too_many_agents", `site "${site}" already has ${MAX_AGENTS} agents, the most a site may have: revoke one first`);
    const now = Date.now();
    const secret = newSecret();
    const signingKey = await deriveSigningKey(secret);
    const row: AgentRow = {
      id: req.id,
      role: req.role,
      uplink: req.uplink ?? null,
      tunnelRestarter: req.tunnelRestarter ?? false,
      signingKey,
      previousKey: null,
      previousUntil: null,
      createdAt: now,
      runtime: emptyRuntime(),
    };
    this.store.transaction(() => {
      this.store.saveAgent(row);
      this.store.appendEvents([{ at: now, kind: "agent-enrolled", message: `agent ${req.id} enrolled (${req.role}${req.uplink ? ` behind ${req.uplink}` : ""})`, data: { agent: req.id } }]);
    });
    this.agents.set(row.id, await liveAgent(row));
    this.toViewers(now);
    return ok({ id: req.id, secret });
  }

  /**
   * A new secret for an enrolled agent. The one it replaces keeps working for the grace (so the
   * agent can be given the new one and restarted without a gap) and retires as soon as the agent
   * signs with the new one.
   */
  async rotate(site: string, agentId: string, req: RotateRequest): Promise<Result<RotateResponse>> {
    const found = this.requireSite(site);
    if (!found.ok) return found;
    const agent = this.agents.get(agentId);
    if (!agent) return fail(404, "agent_not_found", `no agent "${agentId}" in site "${site}"`);
    const secret = newSecret();
    const signingKey = await deriveSigningKey(secret);
    const key = await importSigningKey(signingKey);
    // After the awaits the agent may be gone, or rotated meanwhile: act on what is there now.
    if (this.agents.get(agentId) !== agent) return fail(404, "agent_not_found", `no agent "${agentId}" in site "${site}"`);
    const now = Date.now();
    const until = req.graceSeconds > 0 ? now + req.graceSeconds * 1000 : null;
    const row: AgentRow = { ...agent.row, signingKey, previousKey: until ? agent.row.signingKey : null, previousUntil: until };
    this.store.transaction(() => {
      this.store.saveAgentKeys(row);
      this.store.appendEvents([
        {
          at: now,
          kind: "agent-rotated",
          message: `agent ${agentId}: new secret issued; ${until ? `the old one works until ${new Date(until).toISOString()} or until the agent signs with the new one` : "the old one is refused from now on"}`,
          data: { agent: agentId, previousValidUntil: until },
        },
      ]);
    });
    agent.previous = until ? agent.key : null;
    agent.row = row;
    agent.key = key;
    // Sockets of a key now neither current nor in its grace (a second rotation, or no grace).
    this.closePreviousKeySockets(agentId);
    await this.schedule(now);
    this.toViewers(now);
    return ok({ id: agentId, secret, previousValidUntil: until });
  }

  async revoke(site: string, agentId: string): Promise<Result<{ id: string; revoked: true }>> {
    const found = this.requireSite(site);
    if (!found.ok) return found;
    if (!this.agents.has(agentId)) return fail(404, "agent_not_found", `no agent "${agentId}" in site "${site}"`);
    const now = Date.now();
    this.store.transaction(() => {
      this.store.deleteAgent(agentId);
      this.store.appendEvents([{ at: now, kind: "agent-revoked", message: `agent ${agentId} revoked`, data: { agent: agentId } }]);
    });
    this.agents.delete(agentId);
    this.pushed.delete(agentId);
    this.buckets.delete(agentId);
    for (const ws of this.ctx.getWebSockets(agentId)) ws.close(CLOSE_REVOKED, "agent revoked");
    await this.advance({ kind: "tick" }, now);
    return ok({ id: agentId, revoked: true });
  }

  async setOverride(site: string, req: OverrideRequest): Promise<Result<SiteStatus>> {
    const found = this.requireSite(site);
    if (!found.ok) return found;
    if (!found.value.uplinks.some((u) => u.id === req.uplink))
      return fail(400, "validation_failed", "invalid override", [{ path: "uplink", message: `no uplink "${req.uplink}" in the site config` }]);
    const now = Date.now();
    const until = now + req.forSeconds * 1000;
    const down = this.decision!.uplinks[req.uplink]!.state !== "up";
    await this.advance({ kind: "override-set", override: { uplink: req.uplink, until, reason: req.reason } }, now, [
      {
        at: now,
        kind: "override-set",
        message: `override: ${req.uplink} pinned for ${req.forSeconds} s (${req.reason})${down ? ` although ${req.uplink} is not up` : ""}`,
        data: { uplink: req.uplink, until, reason: req.reason },
      },
    ]);
    return ok(this.statusNow(now));
  }

  async clearOverride(site: string): Promise<Result<SiteStatus>> {
    const found = this.requireSite(site);
    if (!found.ok) return found;
    const now = Date.now();
    await this.advance({ kind: "override-cleared" }, now);
    return ok(this.statusNow(now));
  }

  async status(site: string): Promise<Result<SiteStatus>> {
    const found = this.requireSite(site);
    if (!found.ok) return found;
    const now = Date.now();
    await this.advance({ kind: "tick" }, now);
    return ok(this.statusNow(now));
  }

  async events(site: string, limit: number): Promise<Result<SiteEvent[]>> {
    const found = this.requireSite(site);
    if (!found.ok) return found;
    return ok(this.store.events(limit));
  }

  async metrics(site: string): Promise<Result<string>> {
    const s = await this.status(site);
    return s.ok ? ok(renderMetrics(s.value, { ...this.store.usage, ...this.usage })) : s;
  }

  /** The site's line in the list of sites. */
  async summary(site: string): Promise<Result<SiteSummary>> {
    const s = await this.status(site);
    if (!s.ok) return s;
    const { activeUplink, mode, since, uplinks, agents } = s.value;
    return ok({
      site,
      activeUplink,
      mode,
      since,
      uplinks: uplinks.map((u) => ({ id: u.id, name: u.name, state: u.state })),
      agents: agents.length,
      staleAgents: agents.filter((a) => a.stale).length,
    });
  }

  // ---- agent channel ---------------------------------------------------------------------------

  /** The plain HTTPS heartbeat: same checks and effects as a WebSocket frame. */
  async heartbeat(site: string, req: HeartbeatRequest): Promise<Result<SignedReply>> {
    const found = this.requireSite(site);
    if (!found.ok) return found;
    const now = Date.now();
    const got = await this.ingest(req.agent, req.ts, req.sig, req.body, req.seen, null, now);
    if (!got.ok) return got;
    return ok(await this.signedDirective(got.value.agent, got.value.key, got.value.seq, Date.now()));
  }

  /**
   * WebSocket upgrades only; the Worker has checked the ids, the Upgrade header and, for status
   * pages (`…/live`), the viewer's rights.
   */
  async fetch(request: Request): Promise<Response> {
    if (new URL(request.url).pathname.endsWith("/live")) return this.acceptViewer(request.headers.get("x-wanwatch-site") ?? "");
    const site = request.headers.get("x-wanwatch-site") ?? "";
    const agentId = request.headers.get("x-wanwatch-agent-id") ?? "";
    const uplink = request.headers.get(HEADER_UPLINK) ?? "";
    const ts = Number(request.headers.get(HEADER_TS));
    const sig = request.headers.get(HEADER_SIG) ?? "";
    const now = Date.now();
    const refuse = (r: { failure: Failure }) => failureResponse(r.failure, { "x-wanwatch-now": String(now) });
    const found = this.requireSite(site);
    if (!found.ok) return refuse(found);
    if (!found.value.uplinks.some((u) => u.id === uplink))
      return refuse(fail(400, "unknown_uplink", `header ${HEADER_UPLINK}: no uplink "${uplink}" in the site config`));
    const auth = await this.authenticate(agentId, ts, sig, `connect ${uplink}`, now);
    if (!auth.ok) return refuse(auth);
    const agent = auth.value.agent;
    if (agent.row.uplink && agent.row.uplink !== uplink)
      return refuse(fail(403, "wrong_uplink", `probe "${agentId}" sits behind uplink "${agent.row.uplink}", not "${uplink}"`));
    // One channel per agent per uplink: a reconnect replaces the old socket.
    for (const old of this.ctx.getWebSockets(`${agentId}/${uplink}`)) old.close(CLOSE_REPLACED, "replaced by a new connection");
    const pair = new WebSocketPair();
    const server = pair[1];
    this.ctx.acceptWebSocket(server, [agentId, `${agentId}/${uplink}`]);
    const tag: SocketTag = {
      agent: agentId,
      uplink,
      keyId: auth.value.keyId,
      ip: request.headers.get("x-wanwatch-client-ip"),
      asn: Number(request.headers.get("x-wanwatch-client-asn")) || null,
    };
    server.serializeAttachment(tag);
    return new Response(null, { status: 101, webSocket: pair[0], headers: { "x-wanwatch-now": String(now) } });
  }

  private acceptViewer(site: string): Response {
    const found = this.requireSite(site);
    if (!found.ok) return failureResponse(found.failure);
    if (this.ctx.getWebSockets(VIEWER_TAG).length >= MAX_VIEWERS)
      return failureResponse({ status: 429, code: "too_many_viewers", message: `at most ${MAX_VIEWERS} live status pages per site` });
    const now = Date.now();
    const pair = new WebSocketPair();
    this.ctx.acceptWebSocket(pair[1], [VIEWER_TAG]);
    pair[1].serializeAttachment({ viewer: true } satisfies ViewerTag);
    const status = this.statusNow(now);
    pair[1].send(JSON.stringify({ type: "snapshot", status, events: this.store.events(SNAPSHOT_EVENTS), availability: this.availabilityNow(status, now) } satisfies LiveMessage));
    return new Response(null, { status: 101, webSocket: pair[0] });
  }

  async webSocketMessage(ws: WebSocket, message: string | ArrayBuffer): Promise<void> {
    const now = Date.now();
    this.usage.webSocketMessages++;
    const tag = ws.deserializeAttachment() as SocketTag | ViewerTag;
    if ("viewer" in tag) {
      // A page back from the background asks for the state (at most once a second: anyone may be a
      // viewer); the strip it extends itself.
      if (message !== "refresh" || !this.config || now - (this.refreshedAt.get(ws) ?? -Infinity) < VIEWER_PUSH_MS) return;
      this.refreshedAt.set(ws, now);
      ws.send(JSON.stringify({ type: "update", status: this.statusNow(now), events: [] } satisfies LiveMessage));
      return;
    }
    const sendError = (code: string, msg: string) =>
      ws.send(JSON.stringify(EdgeMessage.parse({ type: "error", now, error: { code, message: msg } })));
    if (!this.config) return sendError("site_not_found", "the site has no config");
    if (typeof message !== "string") return sendError("bad_frame", "frames are JSON text");
    // Refused before parsing: a frame may be up to 1 MiB, a signed heartbeat needs a fraction of it.
    if (message.length > 2 * MAX_HEARTBEAT_BYTES) return sendError("frame_too_large", `frames are at most ${2 * MAX_HEARTBEAT_BYTES} characters`);
    let frame: SignedFrame;
    try {
      const parsed = SignedFrame.safeParse(JSON.parse(message));
      if (!parsed.success) return sendError("bad_frame", issueLines(parsed.error).join("; "));
      frame = parsed.data;
    } catch {
      return sendError("invalid_json", "frame is not valid JSON");
    }
    const got = await this.ingest(tag.agent, frame.ts, frame.sig, frame.body, { ip: tag.ip, asn: tag.asn }, tag.uplink, now);
    if (!got.ok) {
      if (got.failure.code === "unknown_agent") ws.close(CLOSE_REVOKED, "agent revoked");
      // Error frames carry no issues field (agents parse them strictly): the message names the field.
      else sendError(got.failure.code, [got.failure.message, ...(got.failure.issues ?? []).map((i) => `${i.path}: ${i.message}`)].join("; "));
      return;
    }
    const reply = await this.signedDirective(got.value.agent, got.value.key, got.value.seq, Date.now());
    try {
      ws.send(JSON.stringify(reply));
    } catch {
      // Closed while we worked (replaced, or its secret retired): nothing to answer.
    }
  }

  async webSocketClose(ws: WebSocket, code: number, reason: string): Promise<void> {
    try {
      ws.close(code === 1005 || code === 1006 ? 1000 : code, reason);
    } catch {
      // Already closed: nothing to do.
    }
  }

  async alarm(): Promise<void> {
    this.alarmAt = null;
    this.usage.alarmRuns++;
    const now = Date.now();
    try {
      if (this.config) {
        for (const a of this.agents.values()) this.expireRotation(a, now);
        await this.advance({ kind: "tick" }, now);
        if (now - this.lastCheckpointAt >= CHECKPOINT_MS) this.checkpoint(now);
        if (this.outboxNextAt !== null && this.outboxNextAt <= now) await this.deliverDue(now);
      }
      for (const [mac, until] of this.accepted) if (until <= now) this.accepted.delete(mac);
    } catch (err) {
      // A throwing alarm is retried up to six times and then dropped: log, and keep our own schedule.
      console.error(JSON.stringify({ msg: "alarm failed", site: this.site, error: String(err) }));
    } finally {
      await this.schedule(now);
    }
  }

  // ---- internals -------------------------------------------------------------------------------

  /**
   * Checks a message's signature, age, novelty and rate; returns the agent, the key that signed it
   * and that key's id (for socket tags).
   */
  private async authenticate(agentId: string, ts: number, sig: string, body: string, now: number): Promise<Result<{ agent: LiveAgent; key: SigningKey; keyId: string }>> {
    const agent = this.agents.get(agentId);
    if (!agent) return fail(401, "unknown_agent", `agent "${agentId}" is not enrolled in this site (or was revoked)`);
    if (!Number.isSafeInteger(ts) || Math.abs(ts - now) > MAX_SKEW_MS)
      return fail(401, "stale_timestamp", `timestamp ${ts} is more than ${MAX_SKEW_MS / 1000} s from edge time ${now}: correct the clock offset`);
    // The replay guard is keyed by the MAC's bytes, and only their canonical spelling verifies:
    // no respelling of one signature is a new message.
    const bytes = parseMac(sig);
    if (!bytes) return fail(401, "bad_signature", "signature is not a 32-byte MAC in canonical base64url");
    const mac = String.fromCharCode(...bytes);
    this.expireRotation(agent, now);
    const parts = { direction: "up" as const, site: this.site!, agent: agentId, ts, body };
    // The keys as they are now: a rotation may land while we verify.
    const current = { key: agent.key, stored: agent.row.signingKey };
    const previous = agent.previous ? { key: agent.previous, stored: agent.row.previousKey! } : null;
    const signedBy = (await verify(current.key, parts, sig)) ? current : previous && (await verify(previous.key, parts, sig)) ? previous : null;
    // Still enrolled, and still holding that key, after the awaits.
    if (this.agents.get(agentId) !== agent) return fail(401, "unknown_agent", `agent "${agentId}" is not enrolled in this site (or was revoked)`);
    if (!signedBy || (signedBy.key !== agent.key && signedBy.key !== agent.previous)) return fail(401, "bad_signature", "signature does not match the message and the agent's key");
    const key = signedBy.key;
    if (this.accepted.has(mac) || ts < this.loadedAt - WAKE_REPLAY_MARGIN_MS) return fail(409, "replayed", "this message was already accepted (or was signed before the edge restarted): sign a new one");
    // Counted only once the signature holds: nobody else can spend an agent's allowance.
    if (!this.withinRate(agent.row, now)) return fail(429, "rate_limited", `agent "${agentId}" sends more than ${RATE_PER_UPLINK} messages per heartbeat interval and uplink: slow down`);
    this.accepted.set(mac, now + 2 * MAX_SKEW_MS);
    if (key === agent.key && agent.previous) this.retirePreviousKey(agent, now, "used");
    return ok({ agent, key, keyId: keyId(signedBy.stored) });
  }

  /** A rotation's grace that has run out ends now: the old key, its sockets and its pushes go. */
  private expireRotation(agent: LiveAgent, now: number): void {
    if (agent.previous && now >= agent.row.previousUntil!) this.retirePreviousKey(agent, now, "expired");
  }

  /** The old secret stops working: the agent signed with the new one, or the grace ran out. */
  private retirePreviousKey(agent: LiveAgent, now: number, why: "used" | "expired"): void {
    agent.row = { ...agent.row, previousKey: null, previousUntil: null };
    agent.previous = null;
    const message = why === "used" ? `agent ${agent.row.id} signs with its new secret; the old one is refused from now on` : `agent ${agent.row.id}: the grace of its old secret ran out; the old one is refused from now on`;
    this.store.transaction(() => {
      this.store.saveAgentKeys(agent.row);
      this.store.appendEvents([{ at: now, kind: "agent-rotation-done", message, data: { agent: agent.row.id, why } }]);
    });
    this.closePreviousKeySockets(agent.row.id);
  }

  /** Closes the agent's sockets opened with a key it no longer has (neither current nor in its grace). */
  private closePreviousKeySockets(agentId: string): void {
    const row = this.agents.get(agentId)?.row;
    if (!row) return;
    const held = [row.signingKey, ...(row.previousKey ? [row.previousKey] : [])].map(keyId);
    for (const ws of this.ctx.getWebSockets(agentId))
      if (!held.includes((ws.deserializeAttachment() as SocketTag).keyId)) ws.close(CLOSE_REVOKED, "secret rotated");
  }

  private withinRate(row: AgentRow, now: number): boolean {
    // Agents keep their own interval (1 s unless configured): a slower site policy must not throttle them.
    const intervalMs = Math.min(this.config!.policy.heartbeatMs, 1_000);
    const factor = Number(this.env.AGENT_RATE_FACTOR ?? 1) || 1;
    const perInterval = RATE_PER_UPLINK * (row.role === "probe" ? 1 : this.config!.uplinks.length) * factor;
    const cap = perInterval + RATE_BURST;
    const b = this.buckets.get(row.id) ?? { tokens: cap, at: now };
    const tokens = Math.min(cap, b.tokens + ((now - b.at) * perInterval) / intervalMs);
    const allowed = tokens >= 1;
    this.buckets.set(row.id, { tokens: allowed ? tokens - 1 : tokens, at: now });
    return allowed;
  }

  private async ingest(
    agentId: string,
    ts: number,
    sig: string,
    body: string,
    seen: Observed,
    channelUplink: string | null,
    now: number,
  ): Promise<Result<{ agent: LiveAgent; key: SigningKey; seq: number }>> {
    const checked = await this.check(agentId, ts, sig, body, channelUplink, now);
    if (!checked.ok) {
      this.recordRejection(agentId, checked.failure, now);
      return checked;
    }
    const { agent, key, hb } = checked.value;
    let evidenceFor: string | null = hb.uplink;
    let misroutedVia: string | null = null;
    const probe = agent.row.role === "probe";
    if (probe) this.learn(hb.uplink, seen, { rttMs: hb.rttEdgeMs ?? null, gatewayRttMs: hb.rttGatewayMs ?? null, path: hb.path ?? null }, now);
    else {
      const learned = new Map([...this.observations].map(([id, o]) => [id, { ip: o.ip, asn: o.asn }]));
      ({ evidenceFor, misroutedVia } = attribute(hb.uplink, seen, learned));
    }
    if (evidenceFor && seen.ip) this.lastEvidenceIp.set(evidenceFor, seen.ip);
    const events = this.absorb(agent, hb, misroutedVia, seen, now);
    // Only a probe's view of its path judges the uplink's quality: it sits behind that uplink alone.
    await this.advance(evidenceFor ? { kind: "heartbeat", uplink: evidenceFor, path: probe ? hb.path : null } : { kind: "tick" }, now, events);
    return ok({ agent, key, seq: hb.seq });
  }

  /** The signature, the body and the uplink claims of a heartbeat, before anything is believed. */
  private async check(agentId: string, ts: number, sig: string, body: string, channelUplink: string | null, now: number): Promise<Result<{ agent: LiveAgent; key: SigningKey; hb: Heartbeat }>> {
    const auth = await this.authenticate(agentId, ts, sig, body, now);
    if (!auth.ok) return auth;
    const { agent, key } = auth.value;
    let json: unknown;
    try {
      json = JSON.parse(body);
    } catch {
      return fail(400, "invalid_json", "heartbeat body is not valid JSON");
    }
    const parsed = Heartbeat.safeParse(json);
    if (!parsed.success) return fail(400, "validation_failed", "invalid heartbeat", fieldIssues(parsed.error));
    const hb = parsed.data;
    const issue = (message: string) => fail(400, "validation_failed", "invalid heartbeat", [{ path: "uplink", message }]);
    if (!this.config!.uplinks.some((u) => u.id === hb.uplink)) return issue(`no uplink "${hb.uplink}" in the site config`);
    if (channelUplink && hb.uplink !== channelUplink) return issue(`"${hb.uplink}" sent on the channel for "${channelUplink}"`);
    if (agent.row.uplink && hb.uplink !== agent.row.uplink) return issue(`probe "${agentId}" sits behind "${agent.row.uplink}"`);
    return ok({ agent, key, hb });
  }

  /**
   * Puts a refused heartbeat of an enrolled agent on the timeline (a wrong clock, a stale secret,
   * a replay), at most once per agent and reason per REJECTION_LOG_MS; ids nobody enrolled are
   * not recorded, since anyone can invent them.
   */
  private recordRejection(agentId: string, failure: Failure, now: number): void {
    const key = `${agentId}\0${failure.code}`;
    if (!this.agents.has(agentId) || now - (this.rejectionLoggedAt.get(key) ?? -Infinity) < REJECTION_LOG_MS) return;
    this.rejectionLoggedAt.set(key, now);
    this.store.appendEvents([{ at: now, kind: "heartbeat-rejected", message: `${agentId}: heartbeat rejected (${failure.code}): ${failure.message}`, data: { agent: agentId, code: failure.code } }]);
    this.toViewers(now);
  }

  /** Probes are the reference for each uplink's public address. */
  private learn(uplink: string, seen: Observed, rtt: Pick<UplinkObservation, "rttMs" | "gatewayRttMs" | "path">, now: number): void {
    const prev = this.observations.get(uplink);
    const next: UplinkObservation = { id: uplink, ip: seen.ip, asn: seen.asn, ...rtt, at: now };
    this.observations.set(uplink, next);
    if (!prev || prev.ip !== next.ip || prev.asn !== next.asn) {
      this.store.transaction(() => {
        this.store.saveObservation(next);
        if (prev?.ip)
          this.store.appendEvents([{ at: now, kind: "uplink-address", message: `${uplink}: public address ${prev.ip} → ${next.ip ?? "unknown"}`, data: { uplink, from: prev.ip, to: next.ip } }]);
      });
    }
  }

  /** Folds a heartbeat into the agent's runtime; returns the events worth recording. */
  private absorb(agent: LiveAgent, hb: Heartbeat, misroutedVia: string | null, seen: Observed, now: number): NewEvent[] {
    const before = agent.row.runtime;
    const misrouted = { ...before.misrouted };
    if (misroutedVia) misrouted[hb.uplink] = misroutedVia;
    else delete misrouted[hb.uplink];
    const after: AgentRuntime = {
      ...before,
      misrouted,
      lastSeenAt: now,
      uplinksSeen: { ...before.uplinksSeen, [hb.uplink]: now },
      appliedGeneration: hb.appliedGeneration,
      tunnelGeneration: hb.tunnelGeneration,
      lastError: hb.lastError,
      version: hb.version,
      routedUplink: hb.routedUplink ?? null,
      clockOffsetMs: hb.clockOffsetMs ?? null,
      stale: false,
    };
    agent.row = { ...agent.row, runtime: after };
    agent.dirty = true;
    const id = agent.row.id;
    const events: NewEvent[] = [];
    // Own keys only: "constructor" is a valid uplink id, and a member of every object.
    if (misroutedVia !== (Object.hasOwn(before.misrouted, hb.uplink) ? before.misrouted[hb.uplink] : null))
      events.push(
        misroutedVia
          ? { at: now, kind: "misrouted", message: `${id}: heartbeats for ${hb.uplink} arrive through ${misroutedVia} (check its policy routing); not counted for ${hb.uplink}`, data: { agent: id, claimed: hb.uplink, via: misroutedVia, ip: seen.ip } }
          : { at: now, kind: "misrouted-cleared", message: `${id}: heartbeats for ${hb.uplink} travel through ${hb.uplink} again`, data: { agent: id, uplink: hb.uplink } },
      );
    if (after.appliedGeneration !== null && after.appliedGeneration !== before.appliedGeneration)
      events.push({ at: now, kind: "applied", message: `${id} applied generation ${after.appliedGeneration}${after.routedUplink ? ` (routes via ${after.routedUplink})` : ""}`, data: { agent: id, generation: after.appliedGeneration } });
    if (after.tunnelGeneration !== null && after.tunnelGeneration !== before.tunnelGeneration)
      events.push({ at: now, kind: "tunnels-restarted", message: `${id} restarted tunnels for generation ${after.tunnelGeneration}`, data: { agent: id, generation: after.tunnelGeneration } });
    if (after.lastError !== before.lastError && after.lastError !== null)
      events.push(
        this.restartingTunnels(agent.row)
          ? { at: now, kind: "tunnel-restart-failed", message: `${id} could not restart the tunnels for generation ${this.plan!.generation}: ${after.lastError}`, data: { agent: id, generation: this.plan!.generation } }
          : { at: now, kind: "agent-error", message: `${id}: ${after.lastError}`, data: { agent: id } },
      );
    if (before.stale) events.push({ at: now, kind: "agent-back", message: `${id} is heard again`, data: { agent: id } });
    if (after.version !== before.version && before.version !== null)
      events.push({ at: now, kind: "agent-version", message: `${id} now runs ${after.version}`, data: { agent: id, from: before.version, to: after.version } });
    // What a restart must not lose is written now (a first contact included, so a restart never
    // shows an agent as "never seen"); last-seen times wait for the checkpoint.
    if (events.length || after.routedUplink !== before.routedUplink || after.version !== before.version || before.stale) {
      this.store.saveAgentRuntime(id, after);
      agent.dirty = false;
    }
    return events;
  }

  /** Whether the agent's error comes from restarting tunnels: it was told to, and has the routes. */
  private restartingTunnels(row: AgentRow): boolean {
    const d = this.directiveFor(row);
    return !!d?.restartTunnels && (row.runtime.appliedGeneration ?? -1) >= d.generation && (row.runtime.tunnelGeneration ?? -1) < d.generation;
  }

  /** Agents that just went stale; none while last-seen times are only checkpoints (just after a wake). */
  private newlyStale(now: number): LiveAgent[] {
    if (now - this.loadedAt < agentStaleAfterMs(this.config!)) return [];
    return [...this.agents.values()].filter((a) => !a.row.runtime.stale && a.row.runtime.lastSeenAt !== null && !isLive(a.row, this.config!, now));
  }

  /** Servers whose set of cut-off uplinks changed; none just after a wake, for the same reason as above. */
  private changedPaths(decision: DecisionState, now: number): { agent: LiveAgent; cutOff: string[] }[] {
    if (now - this.loadedAt < agentStaleAfterMs(this.config!)) return [];
    return [...this.agents.values()].flatMap((agent) => {
      const cutOff = cutOffUplinks(agent.row, decision, this.config!, now);
      return cutOff.join() === (agent.row.runtime.cutOff ?? []).join() ? [] : [{ agent, cutOff }];
    });
  }

  private serverViews(now: number): ServerView[] {
    return [...this.agents.values()].map(({ row }) => ({
      id: row.id,
      role: row.role,
      tunnelRestarter: row.tunnelRestarter,
      live: isLive(row, this.config!, now),
      appliedGeneration: row.runtime.appliedGeneration,
      tunnelGeneration: row.runtime.tunnelGeneration,
    }));
  }

  /**
   * Runs the decision engine and the tunnel planner, writes every transition and its events in
   * one transaction, and only then tells the agents.
   */
  private async advance(event: DecisionEvent, now: number, extra: NewEvent[] = []): Promise<void> {
    const shape = this.shape();
    const { state, effects } = step(this.decision!, event, now, shape);
    const switched = effects.find((e) => e.kind === "switch");
    let plan = this.plan;
    if (switched) plan = switched.reason === "initial" ? null : { generation: switched.generation, switchedAt: now, restarter: null, requestedAt: null, doneAt: null };
    const tunnels = planTunnels(plan, this.config!.tunnels.restart, this.serverViews(now), this.config!.tunnels.maxWaitMs, now);
    plan = tunnels.plan;
    const stale = this.newlyStale(now);
    const paths = this.changedPaths(state, now);
    const events = [
      ...extra,
      ...effects.flatMap((e) => describe(e, now)),
      ...describeReach(this.decision!, state, now),
      ...tunnels.effects.map((e) => describeTunnel(e, now)),
      ...stale.map(({ row }) => describeStale(row, now)),
      ...paths.flatMap((p) => describePaths(p.agent.row, p.cutOff, state, agentStaleAfterMs(this.config!), now)),
    ];
    const decisionChanged = effects.length > 0 || event.kind === "override-set";
    const planChanged = plan !== this.plan;
    if (decisionChanged || planChanged || events.length)
      this.store.transaction(() => {
        if (decisionChanged) this.store.saveDecision(state);
        if (planChanged) this.store.saveTunnelPlan(plan);
        for (const a of stale) {
          a.row = { ...a.row, runtime: { ...a.row.runtime, stale: true } };
          this.store.saveAgentRuntime(a.row.id, a.row.runtime);
        }
        for (const { agent, cutOff } of paths) {
          agent.row = { ...agent.row, runtime: { ...agent.row.runtime, cutOff } };
          this.store.saveAgentRuntime(agent.row.id, agent.row.runtime);
        }
        const queued = notificationsFor(this.store.appendEvents(events), this.config!.notify);
        this.store.enqueue(queued, now);
        if (queued.length) this.outboxNextAt = Math.min(this.outboxNextAt ?? now, now);
      });
    this.decision = state;
    this.plan = plan;
    if (switched || planChanged) await this.pushDirectives(now);
    await this.schedule(now);
    this.toViewers(now);
  }

  /** Sends open status pages what was recorded since they last heard, and the state at most once a second otherwise. */
  private toViewers(now: number): void {
    const sockets = this.ctx.getWebSockets(VIEWER_TAG);
    if (!sockets.length) {
      this.viewerSeq = this.store.newestSeq;
      return;
    }
    const fresh = this.store.newestSeq > this.viewerSeq;
    if (!fresh && now - this.viewerPushAt < VIEWER_PUSH_MS) return;
    const events = fresh ? this.store.eventsAfter(this.viewerSeq) : [];
    this.viewerSeq = this.store.newestSeq;
    this.viewerPushAt = now;
    const frame = JSON.stringify({ type: "update", status: this.statusNow(now), events } satisfies LiveMessage);
    for (const ws of sockets) {
      try {
        ws.send(frame);
      } catch {
        // A page closing under us: it gets a fresh snapshot when it reconnects.
      }
    }
  }

  private availabilityNow(status: SiteStatus, now: number): UplinkAvailability[] {
    const start = Math.max(now - AVAILABILITY_WINDOW_MS, this.store.firstEventAt() ?? now);
    return availability(status.uplinks, this.store.uplinkChanges(start), start, now);
  }

  private directiveFor(row: AgentRow): Directive | null {
    const d = this.decision!;
    if (d.active === null) return null;
    const view = { id: row.id, role: row.role, tunnelRestarter: row.tunnelRestarter, live: true, appliedGeneration: null, tunnelGeneration: null };
    return { generation: d.generation, activeUplink: d.active, restartTunnels: restartFor(this.plan, this.config!.tunnels.restart, view, d.generation) };
  }

  /** Signed with the key the agent spoke with: during a rotation, the old secret still checks answers. */
  private async signedDirective(agent: LiveAgent, key: SigningKey, ackSeq: number | null, now: number): Promise<SignedReply> {
    const fields = acceptsNewFields(agent.row.runtime.version) ? { downAfterMs: this.config!.policy.downAfterMs, heartbeatMs: this.config!.policy.heartbeatMs } : {};
    const body = JSON.stringify({ type: "directive", directive: this.directiveFor(agent.row), now, ackSeq, ...fields } satisfies EdgeMessage);
    const sig = await sign(key, { direction: "down", site: this.site!, agent: agent.row.id, ts: now, body });
    return { body, ts: now, sig };
  }

  /** Sends each connected agent its directive when it differs from the last one it was sent. */
  private async pushDirectives(now: number): Promise<void> {
    for (const agent of this.agents.values()) {
      const key = JSON.stringify(this.directiveFor(agent.row));
      if (this.pushed.get(agent.row.id) === key) continue;
      const sockets = this.ctx.getWebSockets(agent.row.id);
      if (!sockets.length) continue;
      const frame = JSON.stringify(await this.signedDirective(agent, agent.key, null, now));
      const previousFrame = agent.previous ? JSON.stringify(await this.signedDirective(agent, agent.previous, null, now)) : null;
      const currentId = keyId(agent.row.signingKey);
      const previousId = agent.row.previousKey ? keyId(agent.row.previousKey) : null;
      for (const ws of sockets) {
        const id = (ws.deserializeAttachment() as SocketTag).keyId;
        const out = id === currentId ? frame : id === previousId ? previousFrame : null;
        if (!out) continue;
        try {
          ws.send(out);
        } catch {
          // A socket closing under us: the agent's other channel or its next heartbeat carries the directive.
        }
      }
      this.pushed.set(agent.row.id, key);
    }
  }

  /**
   * Sends the notifications that are due, all at once, and records how each went. Runs from the
   * alarm only, one round at a time; a send that fails is retried with backoff by a later alarm.
   */
  private async deliverDue(now: number): Promise<void> {
    if (this.delivering) return;
    this.delivering = true;
    try {
      const due = this.store.dueNotifications(now, NOTIFY_BATCH);
      const results = await Promise.all(due.map((row) => deliver(row, this.site!, this.env)));
      const done = Date.now();
      this.store.transaction(() => {
        for (const r of results) r.settled ? this.store.settleNotification(r.row, done) : this.store.retryNotification(r.row, r.retryAt!);
        this.store.appendEvents(results.flatMap((r) => (r.event ? [{ ...r.event, at: done }] : [])));
      });
      this.outboxNextAt = this.store.nextNotificationAt();
    } finally {
      this.delivering = false;
    }
    // The alarm that called this schedules the next one.
    this.toViewers(Date.now());
  }

  private checkpoint(now: number): void {
    const dirty = [...this.agents.values()].filter((a) => a.dirty);
    this.store.transaction(() => {
      for (const a of dirty) this.store.saveAgentRuntime(a.row.id, a.row.runtime);
      for (const o of this.observations.values()) this.store.saveObservation(o);
    });
    for (const a of dirty) a.dirty = false;
    this.lastCheckpointAt = now;
  }

  /**
   * One alarm, at the earliest pending deadline; never moved later (each move is a billed write).
   * The decision's deadlines are met by messages: while any uplink is up its heartbeats arrive and
   * each one judges every uplink, so a silent one is judged on the first message after its
   * deadline. For those the alarm is only a backstop, for a site silent on every uplink (where
   * nothing can reach the agents anyway); armed at each deadline it would fire every ~2 s of
   * steady state, each run a billed request and each re-arm a billed row.
   */
  private async schedule(now: number): Promise<void> {
    if (!this.config || !this.decision) return;
    const decidesAt = nextDeadline(this.decision, this.config, now);
    const candidates = [
      decidesAt === null ? null : decidesAt + silenceBackstopMs(this.config.policy.downAfterMs),
      tunnelDeadline(this.plan, this.config.tunnels.restart, this.config.tunnels.maxWaitMs, now),
      [...this.agents.values()].some((a) => a.dirty) ? this.lastCheckpointAt + CHECKPOINT_MS : null,
      this.outboxNextAt,
      ...[...this.agents.values()].flatMap((a) => (a.previous ? [a.row.previousUntil!] : [])),
    ].filter((t): t is number => t !== null);
    if (!candidates.length) return;
    const next = Math.max(Math.min(...candidates), now + 1);
    if (this.alarmAt !== null && this.alarmAt <= next) return;
    this.alarmAt = next;
    this.usage.alarmsSet++;
    await this.ctx.storage.setAlarm(next);
  }

  private statusNow(now: number): SiteStatus {
    const observations = new Map(this.observations);
    for (const [uplink, ip] of this.lastEvidenceIp)
      if (!observations.has(uplink)) observations.set(uplink, { id: uplink, ip, asn: null, rttMs: null, gatewayRttMs: null, at: now });
    return buildStatus({
      site: this.site!,
      config: this.config!,
      decision: this.decision!,
      plan: this.plan,
      agents: [...this.agents.values()].map((a) => a.row),
      observations,
      now,
    });
  }
}

function describe(e: Effect, at: number): NewEvent[] {
  switch (e.kind) {
    case "switch":
      return [
        {
          at,
          kind: "switch",
          message:
            e.reason === "initial"
              ? `active uplink: ${e.to} (generation ${e.generation})`
              : `${e.reason}: ${e.from ?? "none"} → ${e.to} (generation ${e.generation})`,
          data: { from: e.from, to: e.to, generation: e.generation, reason: e.reason },
        },
      ];
    case "uplink-state":
      return [{ at, kind: "uplink", message: `${e.uplink}: ${e.from} → ${e.to}`, data: { uplink: e.uplink, from: e.from, to: e.to } }];
    case "override-ended":
      return [{ at, kind: "override-ended", message: `override of ${e.uplink} ${e.expired ? "expired" : "cleared"}`, data: { uplink: e.uplink, expired: e.expired } }];
    case "uplink-quality": {
      if (!e.path) return [{ at, kind: "uplink-quality", message: `${e.uplink}: no longer degraded (no probe has reported its path for ${PATH_REPORT_STALE_MS / 1000} s: judged by its heartbeats alone)`, data: { uplink: e.uplink, degraded: e.degraded } }];
      const { lossRatio, rttMs, samples } = e.path;
      const figures = `${Math.round(lossRatio * 100)} % of ${samples} handshakes to the edge lost${rttMs === null ? "" : `, median ${Math.round(rttMs)} ms`}, by its probe`;
      return [{ at, kind: "uplink-quality", message: `${e.uplink}: ${e.degraded ? "degraded" : "healthy again"} (${figures})`, data: { uplink: e.uplink, degraded: e.degraded, ...e.path } }];
    }
  }
}

/** The site going offline (after having been online) or coming back (after having been offline). */
function describeReach(before: DecisionState, after: DecisionState, at: number): NewEvent[] {
  const wasOnline = siteMode(before) !== "offline";
  const online = siteMode(after) !== "offline";
  if (wasOnline && !online) return [{ at, kind: "site-offline", message: "site offline: no heartbeat arrives through any uplink (routes are left as they are)", data: {} }];
  if (!wasOnline && online && before.generation > 0) return [{ at, kind: "site-online", message: "site back online", data: {} }];
  return [];
}

/** A server newly cut off from uplinks that work for the rest of the site, or back on them. */
function describePaths(row: AgentRow, cutOff: string[], decision: DecisionState, staleAfterMs: number, at: number): NewEvent[] {
  const before = row.runtime.cutOff ?? [];
  const lost = cutOff.filter((u) => !before.includes(u));
  // Heard through it again; an uplink that just went down for everyone leaves the set silently.
  const back = before.filter((u) => !cutOff.includes(u) && heardWithin(row, u, at, staleAfterMs));
  return [
    ...lost.map((u) => ({
      at,
      kind: "agent-cut-off",
      message: `${row.id} is not heard through ${u}, which is up for the rest of the site: its own path through ${u} is broken (LAN port, cable or policy routing)${decision.active === u ? `; the site stays on ${u}, and ${row.id} has no internet through it` : ""}`,
      data: { agent: row.id, uplink: u },
    })),
    ...back.map((u) => ({ at, kind: "agent-path-back", message: `${row.id} is heard through ${u} again`, data: { agent: row.id, uplink: u } })),
  ];
}

function describeStale(row: AgentRow, at: number): NewEvent {
  return { at, kind: "agent-stale", message: `${row.id} not heard for ${Math.round((at - row.runtime.lastSeenAt!) / 1000)} s`, data: { agent: row.id, lastSeenAt: row.runtime.lastSeenAt } };
}

function describeTunnel(e: TunnelEffect, at: number): NewEvent {
  switch (e.kind) {
    case "tunnel-restart-requested":
      return {
        at,
        kind: "tunnel-restart-requested",
        message: `${e.agent} asked to restart the tunnels for generation ${e.generation}${e.allApplied ? "" : " (not every server applied the switch in time)"}`,
        data: { agent: e.agent, generation: e.generation, allApplied: e.allApplied },
      };
    case "tunnel-restarted":
      return { at, kind: "tunnel-restart-done", message: `tunnels restarted by ${e.agent} for generation ${e.generation}`, data: { agent: e.agent, generation: e.generation } };
    case "tunnel-no-restarter":
      return { at, kind: "tunnel-no-restarter", message: `no live tunnel restarter for generation ${e.generation}: enrol a server with tunnelRestarter`, data: { generation: e.generation } };
  }
}

async function liveAgent(row: AgentRow): Promise<LiveAgent> {
  return { row, key: await importSigningKey(row.signingKey), previous: row.previousKey ? await importSigningKey(row.previousKey) : null, dirty: false };
}

/** Names a key in socket tags without holding it: a prefix of the derived key, never sent anywhere. */
const keyId = (signingKey: string) => signingKey.slice(0, 8);
