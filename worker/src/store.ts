// SQLite is the source of truth for everything that must survive an eviction; memory is a cache
// rebuilt from it on wake. Steady-state heartbeats write nothing here: only transitions do.
import { SiteConfig, type AgentRole, type NotifyTarget, type PathQuality, type SiteEvent } from "#shared";
import type { UplinkChange } from "./availability.ts";
import type { Queued } from "./notify/notification.ts";
import { counterKey, type Counter, type DataUseState, type PeriodUse } from "./engine/data-use.ts";
import type { DecisionState } from "./engine/decision.ts";
import type { TunnelPlan } from "./engine/tunnels.ts";
import type { EventData, NewEvent } from "./site/events.ts";

export const SCHEMA_VERSION = 9;
/** Newest events kept per site. */
export const EVENT_RETENTION = 2_000;

const MIGRATIONS: string[][] = [
  [],
  [
    `CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)`,
    `CREATE TABLE agents (
       id TEXT PRIMARY KEY, role TEXT NOT NULL, uplink TEXT, tunnel_restarter INTEGER NOT NULL,
       signing_key TEXT NOT NULL, created_at INTEGER NOT NULL, runtime TEXT NOT NULL)`,
    `CREATE TABLE uplink_observations (id TEXT PRIMARY KEY, ip TEXT, asn INTEGER, rtt_ms REAL, at INTEGER NOT NULL)`,
    `CREATE TABLE events (seq INTEGER PRIMARY KEY AUTOINCREMENT, at INTEGER NOT NULL, kind TEXT NOT NULL,
       message TEXT NOT NULL, data TEXT)`,
  ],
  [`ALTER TABLE uplink_observations ADD COLUMN gateway_rtt_ms REAL`],
  // The status page reads a day of uplink changes: rows read are billed, so read only those.
  [`CREATE INDEX events_kind_at ON events (kind, at)`],
  // Notifications not yet delivered: written with the event that causes them, so none is lost.
  [
    `CREATE TABLE outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, target TEXT NOT NULL, topic TEXT NOT NULL,
       event TEXT NOT NULL, event_seq INTEGER NOT NULL, replaced INTEGER NOT NULL, attempts INTEGER NOT NULL,
       next_at INTEGER NOT NULL, UNIQUE (target, topic))`,
  ],
  // Secret rotation: the key being replaced keeps working until then, or until the new one is used.
  [`ALTER TABLE agents ADD COLUMN previous_key TEXT`, `ALTER TABLE agents ADD COLUMN previous_until INTEGER`],
  // How sends to each target went, kept after the outbox row is gone: status and metrics show it.
  [
    `CREATE TABLE notify_targets (target TEXT PRIMARY KEY, delivered INTEGER NOT NULL, failed INTEGER NOT NULL,
       failed_attempts INTEGER NOT NULL, last_error TEXT, last_error_at INTEGER, last_delivered_at INTEGER)`,
  ],
  // Enrolment tokens, by hash only (the token itself is never stored); a redeemed row stays a while so
  // a second use is told "already used", not "unknown".
  [
    `CREATE TABLE enrolment_tokens (hash TEXT PRIMARY KEY, agent TEXT NOT NULL, role TEXT NOT NULL, uplink TEXT,
       tunnel_restarter INTEGER NOT NULL, created_at INTEGER NOT NULL, expires_at INTEGER NOT NULL, redeemed_at INTEGER)`,
  ],
  // The IPv6 address each uplink's probe last heartbeated from: its prefix attributes servers' IPv6.
  [`ALTER TABLE uplink_observations ADD COLUMN ip6 TEXT`],
  // Metered uplinks' use this period, and each agent's last interface counters it is measured from.
  [
    `CREATE TABLE data_use (uplink TEXT PRIMARY KEY, period_start INTEGER NOT NULL, bytes INTEGER NOT NULL,
       notified INTEGER NOT NULL)`,
    `CREATE TABLE data_counters (agent TEXT NOT NULL, uplink TEXT NOT NULL, counter TEXT NOT NULL, rx INTEGER NOT NULL,
       tx INTEGER NOT NULL, PRIMARY KEY (agent, uplink))`,
  ],
];

/** What an agent last told us; persisted on change of the fields that matter, checkpointed otherwise. */
export interface AgentRuntime {
  lastSeenAt: number | null;
  appliedGeneration: number | null;
  tunnelGeneration: number | null;
  lastError: string | null;
  version: string | null;
  routedUplink: string | null;
  /** Edge time minus the agent's clock (absent in rows stored before it was reported). */
  clockOffsetMs?: number | null;
  uplinksSeen: Record<string, number>;
  /** The same over IPv6 only (absent before IPv6 channels, and for agents without IPv6). */
  uplinksSeen6?: Record<string, number>;
  misrouted: Record<string, string>;
  /** Uplinks up for the site that this server is not heard through, as last announced (see cutOffUplinks). */
  cutOff?: string[];
  /** The newest route drift recorded, by the agent's own `at` (its heartbeats repeat each for a while). */
  lastDriftAt?: number;
  /** Announced as stale (not heard for the stale threshold); cleared when heard again. */
  stale: boolean;
}

export interface AgentRow {
  id: string;
  role: AgentRole;
  uplink: string | null;
  tunnelRestarter: boolean;
  signingKey: string;
  /** Set while a rotation's grace lasts: the key of the secret being replaced, and until when it counts. */
  previousKey: string | null;
  previousUntil: number | null;
  createdAt: number;
  runtime: AgentRuntime;
}

export interface UplinkObservation {
  id: string;
  /** The public IPv4 address its probes heartbeat from (behind the router's NAT). */
  ip: string | null;
  /** The IPv6 address its probes heartbeat from (no NAT: of the uplink's prefix), if they have IPv6. */
  ip6?: string | null;
  asn: number | null;
  rttMs: number | null;
  /** The probe's own round trip to its router: tells a dead router from a dead uplink. */
  gatewayRttMs: number | null;
  /** The probe's last minute of handshakes to the edge (memory only: the next heartbeat brings it back). */
  path?: PathQuality | null;
  /** The last IPv6 heartbeat through the uplink from any agent (memory only, for the status). */
  ipv6HeardAt?: number | null;
  at: number;
}

export const emptyRuntime = (): AgentRuntime => ({
  lastSeenAt: null,
  appliedGeneration: null,
  tunnelGeneration: null,
  lastError: null,
  version: null,
  routedUplink: null,
  uplinksSeen: {},
  misrouted: {},
  stale: false,
});

/** An enrolment token as stored: its hash and what it enrols. */
export interface EnrolmentTokenRow {
  hash: string;
  agent: string;
  role: AgentRole;
  uplink: string | null;
  tunnelRestarter: boolean;
  createdAt: number;
  expiresAt: number;
  redeemedAt: number | null;
}

/** A notification waiting to be sent (or sent again) to one target. */
export interface OutboxRow {
  id: number;
  target: NotifyTarget;
  event: SiteEvent;
  replaced: number;
  attempts: number;
  nextAt: number;
}

/** Sends to one target, as the ledger and the outbox hold them (keyed by the target's stored JSON). */
export interface TargetSends {
  target: NotifyTarget;
  pending: number;
  retrying: number;
  nextAt: number | null;
  delivered: number;
  failed: number;
  failedAttempts: number;
  lastError: string | null;
  lastErrorAt: number | null;
  lastDeliveredAt: number | null;
}

type EventRow = { seq: number; at: number; kind: string; message: string; data: string | null };
const toEvent = (r: EventRow): SiteEvent => ({
  seq: r.seq,
  at: r.at,
  kind: r.kind,
  message: r.message,
  data: r.data ? (JSON.parse(r.data) as Record<string, unknown>) : null,
});

export class SiteStore {
  /** Sequence number of the newest event, so live viewers can be sent exactly what is new. */
  newestSeq = 0;

  constructor(private readonly storage: DurableObjectStorage) {}

  /**
   * Rows read and written since the object woke, counted from each cursor as Cloudflare bills
   * them; shown in the metrics so the cost of a site can be watched (and benchmarked).
   */
  readonly usage = { rowsRead: 0, rowsWritten: 0 };

  private exec<T extends Record<string, SqlStorageValue>>(query: string, ...bindings: unknown[]): T[] {
    const cursor = this.storage.sql.exec<T>(query, ...bindings);
    const rows = cursor.toArray();
    this.usage.rowsRead += cursor.rowsRead;
    this.usage.rowsWritten += cursor.rowsWritten;
    return rows;
  }

  /** Whether this object was ever given a schema (a site config); reading this writes nothing. */
  initialized(): boolean {
    return this.exec(`SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'`).length > 0;
  }

  migrate(): void {
    this.exec(`CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)`);
    const row = this.exec<{ version: number }>(`SELECT version FROM schema_version`)[0];
    const from = row?.version ?? 0;
    if (from === SCHEMA_VERSION) return;
    this.storage.transactionSync(() => {
      for (let v = from + 1; v <= SCHEMA_VERSION; v++) for (const ddl of MIGRATIONS[v]!) this.exec(ddl);
      this.exec(`DELETE FROM schema_version`);
      this.exec(`INSERT INTO schema_version (version) VALUES (?)`, SCHEMA_VERSION);
    });
  }

  transaction<T>(fn: () => T): T {
    return this.storage.transactionSync(fn);
  }

  private getMeta<T>(key: string): T | null {
    const row = this.exec<{ value: string }>(`SELECT value FROM meta WHERE key = ?`, key)[0];
    return row ? (JSON.parse(row.value) as T) : null;
  }

  private putMeta(key: string, value: unknown): void {
    this.exec(`INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)`, key, JSON.stringify(value));
  }

  site = () => this.getMeta<string>("site");
  // Through the schema: a config stored before a setting existed gets its default.
  config = () => {
    const raw = this.getMeta<SiteConfig>("config");
    if (raw === null) return null;
    const parsed = SiteConfig.safeParse(raw);
    // A config some later schema refuses must not brick the site: keep serving it as stored.
    if (!parsed.success)
      console.error(
        JSON.stringify({ msg: "stored site config no longer validates", issues: parsed.error.issues.length }),
      );
    return parsed.success ? parsed.data : raw;
  };
  decision = () => this.getMeta<DecisionState>("decision");
  tunnelPlan = () => this.getMeta<TunnelPlan>("tunnel");
  saveSite = (site: string, config: SiteConfig) => {
    this.putMeta("site", site);
    this.putMeta("config", config);
  };
  saveDecision = (s: DecisionState) => this.putMeta("decision", s);
  saveTunnelPlan = (p: TunnelPlan | null) => this.putMeta("tunnel", p);

  agents(): AgentRow[] {
    return this.exec<{
      id: string;
      role: string;
      uplink: string | null;
      tunnel_restarter: number;
      signing_key: string;
      previous_key: string | null;
      previous_until: number | null;
      created_at: number;
      runtime: string;
    }>(`SELECT * FROM agents ORDER BY id`).map((r) => ({
      id: r.id,
      role: r.role as AgentRole,
      uplink: r.uplink,
      tunnelRestarter: r.tunnel_restarter === 1,
      signingKey: r.signing_key,
      previousKey: r.previous_key,
      previousUntil: r.previous_until,
      createdAt: r.created_at,
      runtime: { ...emptyRuntime(), ...(JSON.parse(r.runtime) as Partial<AgentRuntime>) },
    }));
  }

  saveAgent(a: AgentRow): void {
    this.exec(
      `INSERT OR REPLACE INTO agents (id, role, uplink, tunnel_restarter, signing_key, previous_key, previous_until, created_at, runtime) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      a.id,
      a.role,
      a.uplink,
      a.tunnelRestarter ? 1 : 0,
      a.signingKey,
      a.previousKey,
      a.previousUntil,
      a.createdAt,
      JSON.stringify(a.runtime),
    );
  }

  saveAgentKeys(a: AgentRow): void {
    this.exec(
      `UPDATE agents SET signing_key = ?, previous_key = ?, previous_until = ? WHERE id = ?`,
      a.signingKey,
      a.previousKey,
      a.previousUntil,
      a.id,
    );
  }

  saveAgentRuntime(id: string, runtime: AgentRuntime): void {
    this.exec(`UPDATE agents SET runtime = ? WHERE id = ?`, JSON.stringify(runtime), id);
  }

  deleteAgent(id: string): void {
    this.exec(`DELETE FROM agents WHERE id = ?`, id);
  }

  enrolmentToken(hash: string): EnrolmentTokenRow | null {
    const r = this.exec<{
      hash: string;
      agent: string;
      role: string;
      uplink: string | null;
      tunnel_restarter: number;
      created_at: number;
      expires_at: number;
      redeemed_at: number | null;
    }>(`SELECT * FROM enrolment_tokens WHERE hash = ?`, hash)[0];
    return r
      ? {
          hash: r.hash,
          agent: r.agent,
          role: r.role as AgentRole,
          uplink: r.uplink,
          tunnelRestarter: r.tunnel_restarter === 1,
          createdAt: r.created_at,
          expiresAt: r.expires_at,
          redeemedAt: r.redeemed_at,
        }
      : null;
  }

  /** Stores a new token; earlier unredeemed tokens for the same agent are dropped (the newest line is the one that works). Returns how many were dropped. */
  saveEnrolmentToken(t: EnrolmentTokenRow): number {
    const dropped = this.exec<{ n: number }>(
      `SELECT COUNT(*) AS n FROM enrolment_tokens WHERE agent = ? AND redeemed_at IS NULL AND expires_at > ?`,
      t.agent,
      t.createdAt,
    )[0]!.n;
    this.exec(`DELETE FROM enrolment_tokens WHERE agent = ? AND redeemed_at IS NULL`, t.agent);
    this.exec(
      `INSERT INTO enrolment_tokens (hash, agent, role, uplink, tunnel_restarter, created_at, expires_at, redeemed_at) VALUES (?, ?, ?, ?, ?, ?, ?, NULL)`,
      t.hash,
      t.agent,
      t.role,
      t.uplink,
      t.tunnelRestarter ? 1 : 0,
      t.createdAt,
      t.expiresAt,
    );
    return dropped;
  }

  markEnrolmentTokenRedeemed(hash: string, at: number): void {
    this.exec(`UPDATE enrolment_tokens SET redeemed_at = ? WHERE hash = ?`, at, hash);
  }

  /** Tokens still waiting to be redeemed (bounds how many a site may hold). */
  pendingEnrolmentTokens(now: number): number {
    return this.exec<{ n: number }>(
      `SELECT COUNT(*) AS n FROM enrolment_tokens WHERE redeemed_at IS NULL AND expires_at > ?`,
      now,
    )[0]!.n;
  }

  /** Forgets tokens that expired or were redeemed before `before`. */
  pruneEnrolmentTokens(before: number): void {
    this.exec(`DELETE FROM enrolment_tokens WHERE expires_at < ? OR redeemed_at < ?`, before, before);
  }

  observations(): UplinkObservation[] {
    return this.exec<{
      id: string;
      ip: string | null;
      ip6: string | null;
      asn: number | null;
      rtt_ms: number | null;
      gateway_rtt_ms: number | null;
      at: number;
    }>(`SELECT * FROM uplink_observations`).map((r) => ({
      id: r.id,
      ip: r.ip,
      ip6: r.ip6,
      asn: r.asn,
      rttMs: r.rtt_ms,
      gatewayRttMs: r.gateway_rtt_ms,
      at: r.at,
    }));
  }

  saveObservation(o: UplinkObservation): void {
    this.exec(
      `INSERT OR REPLACE INTO uplink_observations (id, ip, ip6, asn, rtt_ms, gateway_rtt_ms, at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
      o.id,
      o.ip,
      o.ip6 ?? null,
      o.asn,
      o.rttMs,
      o.gatewayRttMs,
      o.at,
    );
  }

  dataUse(): DataUseState {
    const state: DataUseState = { uplinks: {}, counters: {} };
    for (const r of this.exec<{ uplink: string; period_start: number; bytes: number; notified: number }>(
      `SELECT * FROM data_use`,
    ))
      state.uplinks[r.uplink] = { periodStart: r.period_start, bytes: r.bytes, notified: r.notified };
    for (const r of this.exec<{ agent: string; uplink: string; counter: string; rx: number; tx: number }>(
      `SELECT * FROM data_counters`,
    ))
      state.counters[counterKey(r.agent, r.uplink)] = { counter: r.counter, rx: r.rx, tx: r.tx };
    return state;
  }

  saveDataUse(uplink: string, u: PeriodUse): void {
    this.exec(
      `INSERT OR REPLACE INTO data_use (uplink, period_start, bytes, notified) VALUES (?, ?, ?, ?)`,
      uplink,
      u.periodStart,
      u.bytes,
      u.notified,
    );
  }

  deleteDataCounters(agent: string): void {
    this.exec(`DELETE FROM data_counters WHERE agent = ?`, agent);
  }

  saveDataCounter(agent: string, uplink: string, c: Counter): void {
    this.exec(
      `INSERT OR REPLACE INTO data_counters (agent, uplink, counter, rx, tx) VALUES (?, ?, ?, ?, ?)`,
      agent,
      uplink,
      c.counter,
      c.rx,
      c.tx,
    );
  }

  appendEvents(events: readonly NewEvent[]): SiteEvent[] {
    const recorded = events.map((e) => {
      const data = JSON.stringify(e.data);
      const { seq } = this.exec<{ seq: number }>(
        `INSERT INTO events (at, kind, message, data) VALUES (?, ?, ?, ?) RETURNING seq`,
        e.at,
        e.kind,
        e.message,
        data,
      )[0]!;
      this.newestSeq = seq;
      return { seq, at: e.at, kind: e.kind, message: e.message, data: e.data };
    });
    if (events.length) this.exec(`DELETE FROM events WHERE seq <= ? - ?`, this.newestSeq, EVENT_RETENTION);
    return recorded;
  }

  /**
   * Queues each notification. One still waiting for the same target on the same topic is
   * replaced by the newer (counted, and keeping its retry time): a flapping uplink or a receiver
   * that is down yields one message with the latest state, not a backlog.
   */
  enqueue(items: readonly Queued[], now: number): void {
    for (const { target, topic, event } of items)
      this.exec(
        `INSERT INTO outbox (target, topic, event, event_seq, replaced, attempts, next_at) VALUES (?, ?, ?, ?, 0, 0, ?)
         ON CONFLICT (target, topic) DO UPDATE SET event = excluded.event, event_seq = excluded.event_seq, replaced = replaced + 1`,
        JSON.stringify(target),
        topic,
        JSON.stringify(event),
        event.seq,
        now,
      );
  }

  dueNotifications(now: number, limit: number): OutboxRow[] {
    return this.exec<{
      id: number;
      target: string;
      event: string;
      replaced: number;
      attempts: number;
      next_at: number;
    }>(
      `SELECT id, target, event, replaced, attempts, next_at FROM outbox WHERE next_at <= ? ORDER BY next_at, id LIMIT ?`,
      now,
      limit,
    ).map((r) => ({
      id: r.id,
      target: JSON.parse(r.target) as NotifyTarget,
      event: JSON.parse(r.event) as SiteEvent,
      replaced: r.replaced,
      attempts: r.attempts,
      nextAt: r.next_at,
    }));
  }

  /** Done with what was sent from `row`: gone, unless a newer event replaced it meanwhile (then that one waits, due now). */
  settleNotification(row: OutboxRow, now: number): void {
    this.exec(
      `UPDATE outbox SET replaced = replaced - ? - 1, attempts = 0, next_at = ? WHERE id = ? AND event_seq != ?`,
      row.replaced,
      now,
      row.id,
      row.event.seq,
    );
    this.exec(`DELETE FROM outbox WHERE id = ? AND event_seq = ?`, row.id, row.event.seq);
  }

  retryNotification(row: OutboxRow, at: number): void {
    this.exec(`UPDATE outbox SET attempts = attempts + 1, next_at = ? WHERE id = ?`, at, row.id);
  }

  /** One attempt's outcome in the target's ledger; `gaveUp`: the send is settled as failed. */
  recordAttempt(
    target: NotifyTarget,
    outcome: { ok: true } | { ok: false; error: string },
    gaveUp: boolean,
    at: number,
  ): void {
    const delivered = outcome.ok ? 1 : 0;
    const error = outcome.ok ? null : outcome.error;
    this.exec(
      `INSERT INTO notify_targets (target, delivered, failed, failed_attempts, last_error, last_error_at, last_delivered_at) VALUES (?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (target) DO UPDATE SET delivered = delivered + excluded.delivered, failed = failed + excluded.failed,
         failed_attempts = failed_attempts + excluded.failed_attempts, last_error = coalesce(excluded.last_error, last_error),
         last_error_at = coalesce(excluded.last_error_at, last_error_at), last_delivered_at = coalesce(excluded.last_delivered_at, last_delivered_at)`,
      JSON.stringify(target),
      delivered,
      gaveUp ? 1 : 0,
      1 - delivered,
      error,
      error === null ? null : at,
      delivered ? at : null,
    );
  }

  /** Every target with something waiting or a ledger, keyed by its stored JSON. */
  targetSends(): Map<string, TargetSends> {
    const out = new Map<string, TargetSends>();
    const entry = (key: string) =>
      out.get(key) ??
      out
        .set(key, {
          target: JSON.parse(key) as NotifyTarget,
          pending: 0,
          retrying: 0,
          nextAt: null,
          delivered: 0,
          failed: 0,
          failedAttempts: 0,
          lastError: null,
          lastErrorAt: null,
          lastDeliveredAt: null,
        })
        .get(key)!;
    for (const r of this.exec<{ target: string; n: number; retrying: number; next: number }>(
      `SELECT target, COUNT(*) AS n, SUM(attempts > 0) AS retrying, MIN(next_at) AS next FROM outbox GROUP BY target`,
    ))
      Object.assign(entry(r.target), { pending: r.n, retrying: r.retrying, nextAt: r.next });
    type Ledger = {
      target: string;
      delivered: number;
      failed: number;
      failed_attempts: number;
      last_error: string | null;
      last_error_at: number | null;
      last_delivered_at: number | null;
    };
    for (const r of this.exec<Ledger>(`SELECT * FROM notify_targets`))
      Object.assign(entry(r.target), {
        delivered: r.delivered,
        failed: r.failed,
        failedAttempts: r.failed_attempts,
        lastError: r.last_error,
        lastErrorAt: r.last_error_at,
        lastDeliveredAt: r.last_delivered_at,
      });
    return out;
  }

  /** When the last test notification was sent (the rate limit of tests). */
  lastNotifyTestAt(): number | null {
    return (
      this.exec<{ at: number }>(`SELECT at FROM events WHERE kind = 'notify-test' ORDER BY at DESC LIMIT 1`)[0]?.at ??
      null
    );
  }

  nextNotificationAt(): number | null {
    return this.exec<{ t: number | null }>(`SELECT MIN(next_at) AS t FROM outbox`)[0]!.t;
  }

  loadNewestSeq(): void {
    this.newestSeq = this.exec<{ seq: number }>(`SELECT seq FROM events ORDER BY seq DESC LIMIT 1`)[0]?.seq ?? 0;
  }

  events(limit: number): SiteEvent[] {
    return this.exec<EventRow>(`SELECT * FROM events ORDER BY seq DESC LIMIT ?`, limit).map(toEvent);
  }

  /** Events newer than `seq`, oldest first. */
  eventsAfter(seq: number): SiteEvent[] {
    return this.exec<EventRow>(`SELECT * FROM events WHERE seq > ? ORDER BY seq`, seq).map(toEvent);
  }

  /** Uplink state changes since `since`, oldest first. */
  uplinkChanges(since: number): UplinkChange[] {
    return this.exec<{ at: number; data: string }>(
      `SELECT at, data FROM events WHERE kind = 'uplink' AND at >= ? ORDER BY at, seq`,
      since,
    ).map((r) => {
      const d = JSON.parse(r.data) as EventData["uplink"];
      return { at: r.at, uplink: d.uplink, from: d.from, to: d.to };
    });
  }

  /** When the oldest kept event happened (the site's creation, while the log is young). */
  firstEventAt(): number | null {
    return this.exec<{ at: number }>(`SELECT at FROM events ORDER BY seq LIMIT 1`)[0]?.at ?? null;
  }
}
