// One Durable Object per site: judges the uplinks from the heartbeats, decides the active one,
// and tells every agent. A shell that wires the rooms in site/: SQLite holds what must survive,
// memory holds liveness (rebuilt on wake).
import { DurableObject } from "cloudflare:workers";
import {
  EdgeMessage,
  CLOSE_REVOKED,
  type EnrollRequest,
  type OverrideRequest,
  type RotateRequest,
  type RotateResponse,
  type SiteConfig,
  type SiteEvent,
  type SiteStatus,
  type SiteSummary,
} from "../../shared/src/index.ts";
import type { Observed } from "./attribution.ts";
import { initialState, reshapedState, restoredState, type DecisionEvent } from "./engine/decision.ts";
import type { Env } from "./env.ts";
import { fail, failureResponse, ok, type Failure, type Result } from "./failure.ts";
import { renderMetrics } from "./metrics.ts";
import { notificationsFor } from "./notify/notification.ts";
import { AlarmClock } from "./site/alarm.ts";
import { Authenticator, type Authenticated, type SignedMessage } from "./site/auth.ts";
import { FORWARDED, acceptChannel, frameError, parseFrame } from "./site/channel.ts";
import { Checkpoint } from "./site/checkpoint.ts";
import { siteDeadlines, type ConfiguredSite } from "./site/configured.ts";
import { pushDirectives, restartingTunnels, signedDirective, type SignedReply } from "./site/directives.ts";
import type { NewEvent } from "./site/events.ts";
import { absorb, parseHeartbeat } from "./site/ingest.ts";
import { Observations } from "./site/observations.ts";
import { Outbox } from "./site/outbox.ts";
import { AgentRegistry, rejectionWorthRecording } from "./site/registry.ts";
import { Sockets, attachmentOf, closeQuietly } from "./site/sockets.ts";
import { transition } from "./site/transition.ts";
import { ViewersHub } from "./site/viewers.ts";
import { buildStatus, summaryOf } from "./status.ts";
import { SiteStore } from "./store.ts";

/** A heartbeat as the Worker received it over HTTP: the signed parts plus what the edge saw. */
export interface HeartbeatRequest extends SignedMessage {
  seen: Observed;
}

export class SiteCoordinator extends DurableObject<Env> {
  private readonly store: SiteStore;
  private readonly sockets: Sockets;
  private readonly registry: AgentRegistry;
  private readonly auth: Authenticator;
  private readonly observations: Observations;
  private readonly viewers: ViewersHub;
  private readonly outbox: Outbox;
  private readonly checkpoint: Checkpoint;
  private readonly alarmClock: AlarmClock;
  private site: ConfiguredSite | null = null;
  /** When the object woke: agents' last-seen times are only checkpoints until a while after. */
  private wokeAt = 0;
  /** Billable work since the object woke, besides SQLite rows (the store counts those). */
  private readonly usage = { alarmsSet: 0, alarmRuns: 0, webSocketMessages: 0 };

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.store = new SiteStore(ctx.storage);
    this.sockets = new Sockets(ctx);
    this.registry = new AgentRegistry(this.store, this.sockets);
    this.auth = new Authenticator(this.registry, Number(env.AGENT_RATE_FACTOR ?? 1) || 1);
    this.observations = new Observations(this.store);
    this.viewers = new ViewersHub(this.sockets, this.store);
    this.outbox = new Outbox(this.store, Number(env.NOTIFY_RETRY_BASE_MS) || 5_000);
    this.checkpoint = new Checkpoint(this.store, this.registry, this.observations);
    this.alarmClock = new AlarmClock(ctx.storage, this.usage);
    // Every entry point (fetch, RPC, webSocketMessage, alarm) may be the first after a wake.
    void ctx.blockConcurrencyWhile(() => this.load());
  }

  private async load(): Promise<void> {
    const now = Date.now();
    this.wokeAt = now;
    this.auth.woke(now);
    this.checkpoint.load(now);
    await this.alarmClock.load();
    // Anyone can name a site in a URL: an object nobody configured must store nothing at all.
    if (!this.store.initialized()) return;
    this.store.migrate();
    await this.registry.load();
    this.observations.load();
    this.store.loadNewestSeq();
    this.viewers.load();
    this.outbox.load();
    const id = this.store.site();
    const config = this.store.config();
    if (id !== null && config) {
      const saved = this.store.decision();
      const decision = saved ? restoredState(saved, config, now) : initialState(config, now);
      this.site = { id, config, decision, plan: this.store.tunnelPlan() };
    }
    await this.schedule(now);
  }

  private requireSite(site: string): Result<ConfiguredSite> {
    if (!this.site || this.site.id !== site) return fail(404, "site_not_found", `site "${site}" has no config yet: PUT /v1/sites/${site} first`);
    return ok(this.site);
  }

  // ---- admin RPC ------------------------------------------------------------------------------

  async putConfig(id: string, config: SiteConfig): Promise<Result<SiteConfig>> {
    const now = Date.now();
    const ids = new Set(config.uplinks.map((u) => u.id));
    for (const { row } of this.registry.all())
      if (row.uplink && !ids.has(row.uplink))
        return fail(409, "uplink_in_use", `probe "${row.id}" sits behind uplink "${row.uplink}", which this config removes: revoke it first`);
    const replaced = this.site !== null;
    if (!replaced) this.store.migrate();
    const decision = this.site ? reshapedState(this.site.decision, config, now) : initialState(config, now);
    const site: ConfiguredSite = { id, config, decision, plan: this.site?.plan ?? null };
    this.site = site;
    this.store.transaction(() => {
      this.store.saveSite(id, config);
      this.store.saveDecision(decision);
      this.store.appendEvents([{ at: now, kind: "config", message: replaced ? "site config replaced" : "site created", data: { uplinks: [...ids] } }]);
    });
    await this.advance(site, { kind: "tick" }, now);
    return ok(config);
  }

  async getConfig(id: string): Promise<Result<SiteConfig>> {
    const found = this.requireSite(id);
    return found.ok ? ok(found.value.config) : found;
  }

  async enroll(id: string, req: EnrollRequest): Promise<Result<{ id: string; secret: string }>> {
    const found = this.requireSite(id);
    if (!found.ok) return found;
    const now = Date.now();
    const r = await this.registry.enroll(found.value, req, now);
    if (r.ok) this.viewers.push(now, () => this.statusNow(found.value, now));
    return r;
  }

  async rotate(id: string, agentId: string, req: RotateRequest): Promise<Result<RotateResponse>> {
    const found = this.requireSite(id);
    if (!found.ok) return found;
    const r = await this.registry.rotate(found.value, agentId, req, Date.now);
    if (!r.ok) return r;
    const now = Date.now();
    await this.schedule(now);
    this.viewers.push(now, () => this.statusNow(found.value, now));
    return r;
  }

  async revoke(id: string, agentId: string): Promise<Result<{ id: string; revoked: true }>> {
    const found = this.requireSite(id);
    if (!found.ok) return found;
    const now = Date.now();
    const r = this.registry.revoke(found.value, agentId, now);
    if (r.ok) await this.advance(found.value, { kind: "tick" }, now);
    return r;
  }

  async setOverride(id: string, req: OverrideRequest): Promise<Result<SiteStatus>> {
    const found = this.requireSite(id);
    if (!found.ok) return found;
    const site = found.value;
    if (!site.config.uplinks.some((u) => u.id === req.uplink))
      return fail(400, "validation_failed", "invalid override", [{ path: "uplink", message: `no uplink "${req.uplink}" in the site config` }]);
    const now = Date.now();
    const until = now + req.forSeconds * 1000;
    const down = site.decision.uplinks[req.uplink]?.state !== "up";
    const message = `override: ${req.uplink} pinned for ${req.forSeconds} s (${req.reason})${down ? ` although ${req.uplink} is not up` : ""}`;
    await this.advance(site, { kind: "override-set", override: { uplink: req.uplink, until, reason: req.reason } }, now, [
      { at: now, kind: "override-set", message, data: { uplink: req.uplink, until, reason: req.reason } },
    ]);
    return ok(this.statusNow(site, now));
  }

  async clearOverride(id: string): Promise<Result<SiteStatus>> {
    return this.advanced(id, { kind: "override-cleared" });
  }

  async status(id: string): Promise<Result<SiteStatus>> {
    return this.advanced(id, { kind: "tick" });
  }

  async events(id: string, limit: number): Promise<Result<SiteEvent[]>> {
    const found = this.requireSite(id);
    return found.ok ? ok(this.store.events(limit)) : found;
  }

  async metrics(id: string): Promise<Result<string>> {
    const s = await this.status(id);
    return s.ok ? ok(renderMetrics(s.value, { ...this.store.usage, ...this.usage })) : s;
  }

  /** The site's line in the list of sites. */
  async summary(id: string): Promise<Result<SiteSummary>> {
    const s = await this.status(id);
    return s.ok ? ok(summaryOf(s.value)) : s;
  }

  // ---- agent channel ---------------------------------------------------------------------------

  /** The plain HTTPS heartbeat: same checks and effects as a WebSocket frame. */
  async heartbeat(id: string, req: HeartbeatRequest): Promise<Result<SignedReply>> {
    const found = this.requireSite(id);
    if (!found.ok) return found;
    const got = await this.ingest(found.value, req, req.seen, null, Date.now());
    if (!got.ok) return got;
    return ok(await signedDirective(found.value, got.value.agent.row, got.value.key, got.value.seq, Date.now()));
  }

  /**
   * WebSocket upgrades only; the Worker has checked the ids, the Upgrade header and, for status
   * pages (`…/live`), the viewer's rights.
   */
  async fetch(request: Request): Promise<Response> {
    const found = this.requireSite(request.headers.get(FORWARDED.site) ?? "");
    const now = Date.now();
    if (!new URL(request.url).pathname.endsWith("/live")) return acceptChannel(found, request.headers, this.auth, this.sockets, now);
    return found.ok ? this.viewers.accept(this.statusNow(found.value, now), now) : failureResponse(found.failure);
  }

  async webSocketMessage(ws: WebSocket, message: string | ArrayBuffer): Promise<void> {
    const now = Date.now();
    this.usage.webSocketMessages++;
    const tag = attachmentOf(ws);
    if (!tag) return closeQuietly(ws, 1011, "unknown socket");
    const site = this.site;
    if ("viewer" in tag) return this.viewers.refresh(ws, message, now, site && (() => this.statusNow(site, now)));
    const sendError = (code: string, msg: string) => ws.send(JSON.stringify(EdgeMessage.parse({ type: "error", now, error: { code, message: msg } })));
    if (!site) return sendError("site_not_found", "the site has no config");
    const frame = parseFrame(message);
    if (!frame.ok) return sendError(frame.failure.code, frameError(frame.failure));
    const got = await this.ingest(site, { agent: tag.agent, ...frame.value }, { ip: tag.ip, asn: tag.asn }, tag.uplink, now);
    if (!got.ok) return got.failure.code === "unknown_agent" ? ws.close(CLOSE_REVOKED, "agent revoked") : sendError(got.failure.code, frameError(got.failure));
    const reply = await signedDirective(site, got.value.agent.row, got.value.key, got.value.seq, Date.now());
    try {
      ws.send(JSON.stringify(reply));
    } catch {
      // Closed while we worked (replaced, or its secret retired): nothing to answer.
    }
  }

  async webSocketClose(ws: WebSocket, code: number, reason: string): Promise<void> {
    closeQuietly(ws, code, reason);
  }

  async alarm(): Promise<void> {
    this.alarmClock.fired();
    this.usage.alarmRuns++;
    const now = Date.now();
    try {
      const site = this.site;
      if (site) {
        for (const a of this.registry.all()) this.registry.expireRotation(a, now);
        await this.advance(site, { kind: "tick" }, now);
        this.checkpoint.run(now);
        if (await this.outbox.deliverDue(site.id, now)) this.viewers.push(Date.now(), () => this.statusNow(site, Date.now()));
      }
      this.auth.prune(now);
    } catch (err) {
      // A throwing alarm is retried up to six times and then dropped: log, and keep our own schedule.
      console.error(JSON.stringify({ msg: "alarm failed", site: this.site?.id ?? null, error: String(err) }));
    } finally {
      await this.schedule(now);
    }
  }

  // ---- internals -------------------------------------------------------------------------------

  private async advanced(id: string, event: DecisionEvent): Promise<Result<SiteStatus>> {
    const found = this.requireSite(id);
    if (!found.ok) return found;
    const now = Date.now();
    await this.advance(found.value, event, now);
    return ok(this.statusNow(found.value, now));
  }

  /** Authenticates a heartbeat, folds it into its agent and uplink, and runs the site on it. */
  private async ingest(site: ConfiguredSite, m: SignedMessage, seen: Observed, channelUplink: string | null, now: number): Promise<Result<Authenticated & { seq: number }>> {
    const auth = await this.auth.authenticate(site, m, now);
    if (!auth.ok) return this.rejected(site, m.agent, auth, now);
    const { agent } = auth.value;
    const parsed = parseHeartbeat(m.body, site.config, agent.row, channelUplink);
    if (!parsed.ok) return this.rejected(site, m.agent, parsed, now);
    const hb = parsed.value;
    const probe = agent.row.role === "probe";
    const { evidenceFor, misroutedVia } = probe ? { evidenceFor: hb.uplink, misroutedVia: null } : this.observations.attribute(hb.uplink, seen);
    if (probe) this.observations.learn(hb.uplink, seen, { rttMs: hb.rttEdgeMs ?? null, gatewayRttMs: hb.rttGatewayMs ?? null, path: hb.path ?? null }, now);
    if (evidenceFor) this.observations.noteEvidence(evidenceFor, seen);
    const absorbed = absorb(agent.row, hb, misroutedVia, seen, (runtime) => restartingTunnels(site, { ...agent.row, runtime }), now);
    this.registry.heard(agent, absorbed.runtime, absorbed.persist);
    // Only a probe's view of its path judges the uplink's quality: it sits behind that uplink alone.
    await this.advance(site, evidenceFor ? { kind: "heartbeat", uplink: evidenceFor, path: probe ? hb.path : null } : { kind: "tick" }, now, absorbed.events);
    return ok({ ...auth.value, seq: hb.seq });
  }

  /**
   * Puts a refused heartbeat of an enrolled agent on the timeline (a wrong clock, a stale secret,
   * a replay), at most once per agent and reason in a while; ids nobody enrolled are not
   * recorded, since anyone can invent them.
   */
  private rejected(site: ConfiguredSite, agentId: string, refusal: { ok: false; failure: Failure }, now: number): { ok: false; failure: Failure } {
    const { code, message } = refusal.failure;
    const agent = this.registry.get(agentId);
    if (!agent || !rejectionWorthRecording(agent, code, now)) return refusal;
    this.store.appendEvents([{ at: now, kind: "heartbeat-rejected", message: `${agentId}: heartbeat rejected (${code}): ${message}`, data: { agent: agentId, code } }]);
    this.viewers.push(now, () => this.statusNow(site, now));
    return refusal;
  }

  /** Runs one transition, writes it and its events in one transaction, and only then tells the agents. */
  private async advance(site: ConfiguredSite, event: DecisionEvent, now: number, extra: readonly NewEvent[] = []): Promise<void> {
    const t = transition({ ...site, agents: this.registry.rows(), wokeAt: this.wokeAt, event, extra, now });
    if (t.saveDecision || t.savePlan || t.events.length)
      this.store.transaction(() => {
        if (t.saveDecision) this.store.saveDecision(t.decision);
        if (t.savePlan) this.store.saveTunnelPlan(t.plan);
        for (const [id, runtime] of t.runtimes) {
          const agent = this.registry.get(id);
          if (agent) this.registry.saveRuntime(agent, runtime);
        }
        this.outbox.enqueue(notificationsFor(this.store.appendEvents(t.events), site.config.notify), now);
      });
    site.decision = t.decision;
    site.plan = t.plan;
    if (t.push) await pushDirectives(site, this.registry.all(), this.sockets, now);
    await this.schedule(now);
    this.viewers.push(now, () => this.statusNow(site, now));
  }

  /** One alarm, at the earliest deadline any room has. */
  private async schedule(now: number): Promise<void> {
    if (!this.site) return;
    await this.alarmClock.arm([...siteDeadlines(this.site, now), this.checkpoint.deadline(), this.outbox.deadline(), ...this.registry.rotationDeadlines()], now);
  }

  private statusNow(site: ConfiguredSite, now: number): SiteStatus {
    return buildStatus({ site: site.id, config: site.config, decision: site.decision, plan: site.plan, agents: this.registry.rows(), observations: this.observations.forStatus(now), now });
  }
}
