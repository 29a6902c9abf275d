// One Durable Object per site, deciding its active uplink and telling every agent: a shell that wires
// the rooms in site/. SQLite holds what must survive, memory holds liveness (rebuilt on wake).
import { DurableObject } from "cloudflare:workers";
import type * as wire from "#shared";
import type { DecisionEvent } from "./engine/decision.ts";
import type { Env } from "./env.ts";
import { fail, failureResponse, ok, type Result } from "./failure.ts";
import { renderMetrics } from "./metrics.ts";
import { notificationsFor } from "./notify/notification.ts";
import { notifyStatus } from "./notify/standing.ts";
import { AlarmClock } from "./site/alarm.ts";
import { Authenticator } from "./site/auth.ts";
import { FORWARDED, acceptChannel, answerFrame, type Ingest } from "./site/channel.ts";
import { Checkpoint } from "./site/checkpoint.ts";
import { loadSite, saveConfigured, siteDeadlines, type ConfiguredSite } from "./site/configured.ts";
import { DataUse } from "./site/data-use.ts";
import { EnrolmentDesk } from "./site/enrolment.ts";
import { pushDirectives, signedDirective, type SignedReply } from "./site/directives.ts";
import type { NewEvent } from "./site/events.ts";
import { Intake, type HeartbeatRequest } from "./site/intake.ts";
import { describeOverride, describeReturn } from "./site/narrate.ts";
import { NotifyTester } from "./site/notify-test.ts";
import { Observations } from "./site/observations.ts";
import { Outbox } from "./site/outbox.ts";
import { AgentRegistry } from "./site/registry.ts";
import { Sockets, attachmentOf, closeQuietly } from "./site/sockets.ts";
import { transition } from "./site/transition.ts";
import { ViewersHub } from "./site/viewers.ts";
import { buildStatus, summaryOf } from "./status.ts";
import { SiteStore } from "./store.ts";

export class SiteCoordinator extends DurableObject<Env> {
  // The rooms; ctx and env are set by the base constructor, which runs before these.
  private readonly store = new SiteStore(this.ctx.storage);
  private readonly sockets = new Sockets(this.ctx);
  private readonly registry = new AgentRegistry(this.store, this.sockets);
  private readonly enrolment = new EnrolmentDesk(this.store, this.registry);
  private readonly auth = new Authenticator(this.registry, Number(this.env.AGENT_RATE_FACTOR ?? 1) || 1);
  private readonly observations = new Observations(this.store);
  private readonly dataUse = new DataUse(this.store);
  private readonly intake = new Intake(this.auth, this.registry, this.observations, this.dataUse);
  private readonly viewers = new ViewersHub(this.sockets, this.store);
  private readonly outbox = new Outbox(this.store, Number(this.env.NOTIFY_RETRY_BASE_MS) || 5_000);
  private readonly tester = new NotifyTester(this.store);
  private readonly checkpoint = new Checkpoint(this.store, this.registry, this.observations, this.dataUse);
  /** Billable work since the object woke, besides SQLite rows (the store counts those). */
  private readonly usage = { alarmsSet: 0, alarmRuns: 0, webSocketMessages: 0 };
  private readonly alarmClock = new AlarmClock(this.ctx.storage, this.usage);
  private site: ConfiguredSite | null = null;
  /** When the object woke: agents' last-seen times are only checkpoints until a while after. */
  private wokeAt = 0;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
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
    this.store.loadNewestSeq();
    for (const room of [this.observations, this.dataUse, this.viewers, this.outbox]) room.load();
    this.site = loadSite(this.store, now);
    await this.schedule(now);
  }

  private requireSite(site: string): Result<ConfiguredSite> {
    return this.site?.id === site ? ok(this.site) : fail(404, "site_not_found", `no site "${site}" on this edge`);
  }

  /** Runs `fn` on the configured site `id`, or answers 404. */
  private async on<T>(id: string, fn: (site: ConfiguredSite, now: number) => Promise<Result<T>>): Promise<Result<T>> {
    const found = this.requireSite(id);
    return found.ok ? fn(found.value, Date.now()) : found;
  }

  // ---- admin RPC ------------------------------------------------------------------------------

  async putConfig(id: string, config: wire.SiteConfig): Promise<Result<wire.SiteConfig>> {
    const now = Date.now();
    const inUse = this.registry.probeBehindAny(new Set(config.uplinks.map((u) => u.id)));
    if (inUse) return inUse;
    this.site = saveConfigured(this.store, this.site, id, config, now);
    await this.advance(this.site, { kind: "tick" }, now);
    return ok(config);
  }

  async getConfig(id: string): Promise<Result<wire.SiteConfig>> {
    return this.on(id, async (site) => ok(site.config));
  }

  async enroll(id: string, req: wire.EnrollRequest): Promise<Result<{ id: string; secret: string }>> {
    return this.on(id, async (site, now) => this.viewed(site, await this.registry.enroll(site, req, now)));
  }

  async createEnrolmentToken(
    id: string,
    req: wire.EnrolmentTokenRequest,
  ): Promise<Result<wire.EnrolmentTokenResponse>> {
    return this.on(id, async (site, now) => this.viewed(site, await this.enrolment.create(site, req, now)));
  }

  /** Public (the token is the credential): what it enrols, or the agent enrolled and its secret. */
  async redeemEnrolment(
    id: string,
    req: { token: string; check: boolean; ip: string | null },
  ): Promise<Result<wire.EnrolmentGrant | wire.RedeemResponse>> {
    // An unknown site answers as an unknown token: the desk counts the failure, and nothing is stored.
    const site = this.site?.id === id ? this.site : null;
    const r = await this.enrolment.redeem(site, req.token, req.check, req.ip, Date.now());
    if (site) this.pushViewers(site, Date.now());
    return r;
  }

  async rotate(id: string, agentId: string, req: wire.RotateRequest): Promise<Result<wire.RotateResponse>> {
    return this.on(id, async (site, now) => {
      const r = await this.registry.rotate(site, agentId, req, Date.now);
      if (r.ok) await this.schedule(now);
      return this.viewed(site, r);
    });
  }

  async revoke(id: string, agentId: string): Promise<Result<{ id: string; revoked: true }>> {
    return this.on(id, async (site, now) => {
      const r = this.registry.revoke(site, agentId, now);
      if (!r.ok) return r;
      this.dataUse.forget(agentId);
      await this.advance(site, { kind: "tick" }, now);
      return r;
    });
  }

  async setOverride(id: string, req: wire.OverrideRequest): Promise<Result<wire.SiteStatus>> {
    return this.on(id, async (site, now) => {
      if (!site.config.uplinks.some((u) => u.id === req.uplink))
        return fail(400, "validation_failed", "invalid override", [
          { path: "uplink", message: `no uplink "${req.uplink}" in the site config` },
        ]);
      const override = { uplink: req.uplink, until: now + req.forSeconds * 1000, reason: req.reason };
      const said = describeOverride(override, req.forSeconds, site.decision, now);
      await this.advance(site, { kind: "override-set", override }, now, [said]);
      return ok(this.statusNow(site, now));
    });
  }

  /** Cleared, and when the site is back on the policy's choice. */
  async clearOverride(id: string): Promise<Result<wire.OverrideCleared>> {
    return this.on(id, async (site, now) => {
      await this.advance(site, { kind: "override-cleared" }, now);
      return ok({ ...this.statusNow(site, now), normalChoice: describeReturn(site.decision, site.config, now) });
    });
  }

  async notifyTest(id: string): Promise<Result<wire.NotifyTestResponse>> {
    return this.on(id, async (site, now) => this.viewed(site, await this.tester.run(site, now)));
  }

  async status(id: string): Promise<Result<wire.SiteStatus>> {
    return this.on(id, async (site, now) => {
      await this.advance(site, { kind: "tick" }, now);
      return ok(this.statusNow(site, now));
    });
  }

  async events(id: string, limit: number): Promise<Result<wire.SiteEvent[]>> {
    return this.on(id, async () => ok(this.store.events(limit)));
  }

  async metrics(id: string): Promise<Result<string>> {
    const s = await this.status(id);
    return s.ok ? ok(renderMetrics(s.value, { ...this.store.usage, ...this.usage })) : s;
  }

  /** The site's line in the list of sites. */
  async summary(id: string): Promise<Result<wire.SiteSummary>> {
    const s = await this.status(id);
    return s.ok ? ok(summaryOf(s.value)) : s;
  }

  // ---- agent channel ---------------------------------------------------------------------------

  /** The plain HTTPS heartbeat: same checks and effects as a WebSocket frame. */
  async heartbeat(id: string, req: HeartbeatRequest): Promise<Result<SignedReply>> {
    return this.on(id, async (site) => {
      const got = await this.ingest(site, req, req.seen, null);
      if (!got.ok) return got;
      const { agent, key, seq, agents } = got.value;
      return ok(await signedDirective(site, agent.row, key, seq, Date.now(), agents));
    });
  }

  /**
   * WebSocket upgrades only; the Worker has checked the ids, the Upgrade header and, for status
   * pages (`…/live`), the viewer's rights.
   */
  async fetch(request: Request): Promise<Response> {
    const found = this.requireSite(request.headers.get(FORWARDED.site) ?? "");
    const now = Date.now();
    if (!new URL(request.url).pathname.endsWith("/live"))
      return acceptChannel(found, request.headers, this.auth, this.sockets, now);
    return found.ok ? this.viewers.accept(this.statusNow(found.value, now), now) : failureResponse(found.failure);
  }

  async webSocketMessage(ws: WebSocket, message: string | ArrayBuffer): Promise<void> {
    const now = Date.now();
    this.usage.webSocketMessages++;
    const tag = attachmentOf(ws);
    if (!tag) return closeQuietly(ws, 1011, "unknown socket");
    const site = this.site;
    if ("viewer" in tag) return this.viewers.refresh(ws, message, now, site && (() => this.statusNow(site, now)));
    return answerFrame(ws, tag, message, site, this.ingest, now);
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
        if (await this.outbox.deliverDue(site.id, now)) this.pushViewers(site, Date.now());
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

  /** A heartbeat received and the site run on it; a refusal of an enrolled agent goes on the timeline. */
  private readonly ingest: Ingest = async (site, m, seen, channelUplink) => {
    const now = Date.now();
    const got = await this.intake.receive(site, m, seen, channelUplink, now);
    if (!got.ok) {
      if (this.registry.recordRejection(m.agent, got.failure, now)) this.pushViewers(site, now);
      return got;
    }
    await this.advance(site, got.value.event, now, got.value.events);
    return got;
  };

  /** Runs one transition, writes it and its events in one transaction, and only then tells the agents. */
  private async advance(site: ConfiguredSite, event: DecisionEvent, now: number, extra: readonly NewEvent[] = []) {
    const config = this.dataUse.deciding(site.config, site.decision.active, now);
    const t = transition({ ...site, config, agents: this.registry.rows(), wokeAt: this.wokeAt, event, extra, now });
    if (t.saveDecision || t.savePlan || t.events.length)
      this.store.transaction(() => {
        if (t.saveDecision) this.store.saveDecision(t.decision);
        if (t.savePlan) this.store.saveTunnelPlan(t.plan);
        for (const [id, runtime] of t.runtimes) this.registry.saveRuntime(id, runtime);
        this.outbox.enqueue(notificationsFor(this.store.appendEvents(t.events), site.config.notify), now);
      });
    site.decision = t.decision;
    site.plan = t.plan;
    if (t.push) await pushDirectives(site, this.registry.all(), this.sockets, now);
    await this.schedule(now);
    this.pushViewers(site, now);
  }

  private pushViewers(site: ConfiguredSite, now: number): void {
    this.viewers.push(now, () => this.statusNow(site, now));
  }

  /** A change the status pages show: pushed to them when it succeeded. */
  private viewed<T>(site: ConfiguredSite, r: Result<T>): Result<T> {
    if (r.ok) this.pushViewers(site, Date.now());
    return r;
  }

  /** One alarm, at the earliest deadline any room has. */
  private async schedule(now: number): Promise<void> {
    if (!this.site) return;
    const rooms = [this.checkpoint.deadline(), this.outbox.deadline(), ...this.registry.rotationDeadlines()];
    await this.alarmClock.arm([...siteDeadlines(this.site, now), ...rooms], now);
  }

  private statusNow(site: ConfiguredSite, now: number): wire.SiteStatus {
    const [agents, observations] = [this.registry.rows(), this.observations.forStatus(now)];
    const notify = notifyStatus(site.config.notify, this.outbox.standing());
    const dataUse = this.dataUse.forStatus(site.config, now);
    return buildStatus({ ...site, site: site.id, agents, observations, notify, dataUse, now });
  }
}
