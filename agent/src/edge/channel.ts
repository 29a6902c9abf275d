// One channel to the edge per uplink and address family: a WebSocket bound to the uplink's source
// address, heartbeats every interval, directives pushed down; plain HTTP heartbeats while the
// socket cannot be had.
import WebSocket from "ws";
import {
  CLOSE_REVOKED,
  HEADER_NOW,
  HEADER_SIG,
  HEADER_TS,
  HEADER_UPLINK,
  connectBody,
  type EdgeMessage,
  type Heartbeat,
  Backoff,
  heartbeatFor,
} from "#shared";
import type { Logger } from "../lib/log.ts";
import { AnswerWatch } from "./answer-watch.ts";
import type { EdgeClock } from "./clock.ts";
import { postHeartbeat } from "./heartbeat-http.ts";
import type { Refusal } from "./refusal.ts";
import type { EdgeSigner } from "./signer.ts";

export type DirectiveMessage = Extract<EdgeMessage, { type: "directive" }>;
export type Transport = "websocket" | "http";

/** What the rest of the agent reports in every heartbeat. */
export type HeartbeatState = Pick<
  Heartbeat,
  | "appliedGeneration"
  | "tunnelGeneration"
  | "lastError"
  | "routedUplink"
  | "rttGatewayMs"
  | "path"
  | "clockOffsetMs"
  | "unanswered"
  | "routeDrifts"
  | "uplinkBytes"
>;

export interface ChannelOptions {
  edge: string;
  site: string;
  uplink: string;
  version: string;
  localAddress?: string;
  /** The family it connects over (the edge's A or AAAA record); unset: whichever the name resolves to. */
  family?: 4 | 6;
  heartbeatMs: number;
  signer: EdgeSigner;
  clock: EdgeClock;
  log: Logger;
  nextSeq: () => number;
  state: () => HeartbeatState;
  /** A verified directive message arrived through this uplink. */
  onDirective: (msg: DirectiveMessage, uplink: string) => void;
  /** The edge answered through this uplink. */
  onContact: (
    uplink: string,
    c: {
      transport: Transport;
      rttMs: number | null;
      at: number;
      downAfterMs?: number;
      heartbeatMs?: number;
      uplinkHeartbeatMs?: Record<string, number>;
    },
  ) => void;
  /** This uplink's connection state changed (for the status file). */
  onState?: (uplink: string, s: { transport: Transport | null; error: string | null }) => void;
  /** The edge refused a message of this uplink's (a heartbeat, a connect) and said why. */
  onRefused?: (uplink: string, r: Refusal) => void;
  /** A heartbeat through this uplink has just gone unanswered past its bound (`answers`). */
  onUnanswered?: (uplink: string) => void;
  random?: () => number;
  localNow?: () => number;
}

type ProblemKind = "ws" | "http" | "edge";

export class UplinkChannel {
  private ws: WebSocket | null = null;
  private connected = false;
  private stopped = false;
  private beatTimer: NodeJS.Timeout | null = null;
  private reconnectTimer: NodeJS.Timeout | null = null;
  private httpInFlight = false;
  private lastReceived = 0;
  private lastRtt: number | null = null;
  private readonly sent = new Map<number, number>();
  private readonly backoff: Backoff;
  /** The current problem per kind, each logged once when it starts or changes. */
  private readonly problems = new Map<ProblemKind, string>();
  private readonly problemKeys = new Map<ProblemKind, string>();
  private answeredOver: Transport | null = null;
  private readonly now: () => number;
  /** The interval now: the config's until the edge tells the site's (setHeartbeat). */
  private heartbeatMs: number;
  /** Heartbeat fields beyond the base set that the edge said it accepts (none until it answers). */
  private accepts: ReadonlySet<string> = new Set();
  /** Whether heartbeats through this uplink are answered: a witness's evidence. */
  readonly answers = new AnswerWatch();

  private readonly o: ChannelOptions;

  constructor(o: ChannelOptions) {
    this.o = o;
    this.now = o.localNow ?? Date.now;
    this.heartbeatMs = o.heartbeatMs;
    this.answers.outageMs = o.heartbeatMs;
    // The first retries come fast (an edge deploy drops every socket); then settle near 30 s.
    this.backoff = new Backoff({ baseMs: 500, maxMs: 30_000, factor: 2, jitter: 0.5 }, o.random);
  }

  start(): void {
    this.startBeats();
    void this.connect();
  }

  /** Closes the socket and stops every timer; resolves once the socket is closed (or 1 s passed). */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.beatTimer) clearInterval(this.beatTimer);
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    const ws = this.ws;
    this.ws = null;
    if (!ws || ws.readyState === WebSocket.CLOSED) return;
    await new Promise<void>((resolve) => {
      const t = setTimeout(() => {
        ws.terminate();
        resolve();
      }, 1_000);
      ws.once("close", () => {
        clearTimeout(t);
        resolve();
      });
      if (ws.readyState === WebSocket.CONNECTING) ws.terminate();
      else ws.close(1000, "agent stopping");
    });
  }

  get transport(): Transport {
    return this.connected ? "websocket" : "http";
  }

  /** `sameAs`: what makes two failures the same problem (the errno of an unreachable edge varies). */
  private problem(kind: ProblemKind, msg: string, fields: Record<string, unknown> = {}, sameAs = msg): void {
    // One log line per change of problem, not one per heartbeat or reconnect attempt.
    if (this.problemKeys.get(kind) === sameAs) return;
    this.problemKeys.set(kind, sameAs);
    this.problems.set(kind, msg);
    this.o.log.warn(msg, { ...this.where(), ...fields });
    this.o.onState?.(this.o.uplink, { transport: this.connected ? "websocket" : null, error: msg });
  }

  /** A success through `transport` ends the problems it disproves. */
  private recovered(transport: Transport): void {
    const kinds: ProblemKind[] = transport === "websocket" ? ["ws", "http", "edge"] : ["http", "edge"];
    if (!kinds.some((k) => this.problems.has(k))) return;
    for (const k of kinds) {
      this.problems.delete(k);
      this.problemKeys.delete(k);
    }
    this.o.log.info("edge reachable again", { ...this.where(), transport });
    this.o.onState?.(this.o.uplink, { transport, error: [...this.problems.values()][0] ?? null });
  }

  /** Log fields naming this channel: its uplink, and its family when that is IPv6. */
  private where(): Record<string, unknown> {
    return { uplink: this.o.uplink, ...(this.o.family === 6 ? { family: 6 } : {}) };
  }

  private wsUrl(): string {
    const u = new URL(
      `/v1/sites/${encodeURIComponent(this.o.site)}/agents/${encodeURIComponent(this.o.signer.agent)}/connect`,
      this.o.edge,
    );
    u.protocol = u.protocol === "https:" ? "wss:" : "ws:";
    return u.toString();
  }

  private async connect(): Promise<void> {
    if (this.stopped) return;
    const ts = this.o.clock.now();
    const sig = await this.o.signer.sign(connectBody(this.o.uplink), ts);
    if (this.stopped) return;
    const sentAt = this.now();
    const ws = new WebSocket(this.wsUrl(), {
      headers: { [HEADER_UPLINK]: this.o.uplink, [HEADER_TS]: String(ts), [HEADER_SIG]: sig },
      localAddress: this.o.localAddress,
      family: this.o.family,
      handshakeTimeout: Math.max(3_000, 3 * this.heartbeatMs),
      maxPayload: 64 * 1024,
      perMessageDeflate: false,
    });
    this.ws = ws;
    ws.on("upgrade", (res) => this.observeNow(res.headers[HEADER_NOW], sentAt));
    let refused = false;
    ws.on("unexpected-response", (_req, res) => {
      refused = true;
      this.observeNow(res.headers[HEADER_NOW], sentAt);
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => (body = (body + c).slice(0, 4_096)));
      res.on("end", () => {
        let reason = `HTTP ${res.statusCode}`;
        try {
          const e = JSON.parse(body).error;
          if (e?.code) {
            reason = `${e.code}: ${e.message}`;
            this.o.onRefused?.(this.o.uplink, { code: String(e.code), message: String(e.message) });
          }
        } catch {
          // Not our envelope: the status says enough.
        }
        this.problem("ws", `WebSocket refused by the edge (${reason}); heartbeats go over HTTP`, {
          status: res.statusCode,
        });
        ws.terminate();
      });
    });
    ws.on("open", () => {
      this.connected = true;
      this.lastReceived = this.now();
      this.backoff.reset();
      this.o.log.info("channel open", {
        ...this.where(),
        transport: "websocket",
        localAddress: this.o.localAddress,
      });
      this.recovered("websocket");
      this.o.onState?.(this.o.uplink, { transport: "websocket", error: null });
      void this.beat();
    });
    ws.on("message", (data, isBinary) => {
      if (isBinary) return;
      void this.receive(String(data));
    });
    ws.on("error", (err) => {
      // 'close' follows; say why once.
      if (!this.connected && !refused)
        this.problem(
          "ws",
          `WebSocket to the edge failed (${(err as NodeJS.ErrnoException).code ?? err.message}); heartbeats go over HTTP`,
        );
    });
    ws.on("close", (code, reason) => {
      const was = this.connected;
      if (this.ws === ws) this.ws = null;
      this.connected = false;
      if (this.stopped) return;
      if (was)
        this.problem(
          "ws",
          `channel closed (${code}${reason.length ? ` ${reason.toString()}` : ""}); heartbeats go over HTTP until it reconnects`,
          { code },
        );
      // A revoked agent keeps trying, slowly: re-enrolment with the same id brings it back.
      const delay = code === CLOSE_REVOKED ? 60_000 : this.backoff.next();
      this.reconnectTimer = setTimeout(() => void this.connect(), delay);
    });
  }

  private observeNow(value: string | string[] | undefined, sentAt: number): void {
    const n = Number(Array.isArray(value) ? value[0] : value);
    if (Number.isFinite(n) && n > 0) this.o.clock.observe(n, sentAt, this.now());
  }

  private async receive(data: string): Promise<void> {
    const receivedAt = this.now();
    const v = await this.o.signer.verifyFrame(data);
    if (!v.ok) {
      if (v.unsigned?.type === "error") {
        // Unsigned: never acted on, except that a stale timestamp tells us our clock is off.
        if (v.unsigned.error.code === "stale_timestamp") this.o.clock.observe(v.unsigned.now, receivedAt, receivedAt);
        this.problem("edge", `edge refused a heartbeat (${v.unsigned.error.code}: ${v.unsigned.error.message})`);
        this.o.onRefused?.(this.o.uplink, v.unsigned.error);
      } else this.o.log.warn("ignored an edge message", { ...this.where(), reason: v.reason });
      return;
    }
    this.lastReceived = receivedAt;
    this.handle(v.message, receivedAt, "websocket");
  }

  private handle(msg: EdgeMessage, receivedAt: number, transport: Transport, rttMs?: number): void {
    if (msg.type === "error") {
      this.problem("edge", `edge reported ${msg.error.code}: ${msg.error.message}`);
      return;
    }
    let rtt = rttMs ?? null;
    if (rtt === null && msg.ackSeq !== null) {
      const sentAt = this.sent.get(msg.ackSeq);
      if (sentAt !== undefined) {
        rtt = receivedAt - sentAt;
        this.sent.delete(msg.ackSeq);
        this.o.clock.observe(msg.now, sentAt, receivedAt);
      }
    }
    if (rtt !== null) this.lastRtt = rtt;
    this.answers.answered(msg.ackSeq, receivedAt);
    if (msg.accepts) this.accepts = new Set(msg.accepts);
    this.recovered(transport);
    if (transport !== this.answeredOver) {
      this.answeredOver = transport;
      this.o.log.info("edge answering", { ...this.where(), transport, rttMs: rtt });
    }
    this.o.onContact(this.o.uplink, {
      transport,
      rttMs: rtt,
      at: receivedAt,
      downAfterMs: msg.downAfterMs,
      heartbeatMs: msg.heartbeatMs,
      uplinkHeartbeatMs: msg.uplinkHeartbeatMs,
    });
    this.o.onDirective(msg, this.o.uplink);
  }

  private startBeats(): void {
    this.beatTimer = setInterval(() => void this.beat(), this.heartbeatMs);
  }

  /** A new interval takes effect from the next beat on; a shorter one beats at once (the edge is waiting to hear). */
  setHeartbeat(ms: number): void {
    if (ms === this.heartbeatMs) return;
    const sooner = ms < this.heartbeatMs;
    this.heartbeatMs = ms;
    this.answers.outageMs = ms;
    if (this.beatTimer === null || this.stopped) return;
    clearInterval(this.beatTimer);
    this.startBeats();
    if (sooner) void this.beat();
  }

  /** A heartbeat now, out of turn: a witness report that should not wait for the next interval. */
  beatNow(): void {
    void this.beat();
  }

  /**
   * The path is back (the other family's channel through this uplink was just answered): the
   * WebSocket reconnects now rather than at its backoff's next turn, which a cut may have grown.
   */
  reconnectNow(): void {
    if (this.stopped || this.ws || !this.reconnectTimer) return;
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = null;
    this.backoff.reset();
    void this.connect();
    void this.beat();
  }

  private body(): { seq: number; body: string } {
    const seq = this.o.nextSeq();
    const hb: Heartbeat = {
      type: "heartbeat",
      seq,
      uplink: this.o.uplink,
      version: this.o.version,
      ...this.o.state(),
      rttEdgeMs: this.lastRtt === null ? null : Math.min(120_000, Math.max(0, this.lastRtt)),
    };
    return { seq, body: JSON.stringify(heartbeatFor(hb, this.accepts)) };
  }

  private async beat(): Promise<void> {
    if (this.stopped) return;
    if (this.connected && this.ws) {
      // A socket through a dead uplink may stay "open" for minutes: give up on it after 3 silent intervals.
      if (this.now() - this.lastReceived > Math.max(5_000, 3 * this.heartbeatMs)) {
        this.problem("ws", "no answer on the channel; reconnecting");
        this.ws.terminate();
        return;
      }
      const { seq, body } = this.body();
      const frame = await this.o.signer.frame(body, this.o.clock.now());
      // The socket may have closed (or been replaced by one still connecting) while signing.
      const ws = this.ws;
      if (!this.connected || !ws || ws.readyState !== WebSocket.OPEN) return;
      this.remember(seq);
      ws.send(JSON.stringify(frame));
      return;
    }
    if (this.httpInFlight) return;
    this.httpInFlight = true;
    try {
      const { seq, body } = this.body();
      this.watchAnswer(seq);
      const r = await postHeartbeat({
        edge: this.o.edge,
        site: this.o.site,
        body,
        signer: this.o.signer,
        clock: this.o.clock,
        localAddress: this.o.localAddress,
        family: this.o.family,
        timeoutMs: Math.max(2_000, 2 * this.heartbeatMs),
        localNow: this.now,
      });
      if (this.stopped || this.connected) return;
      if (r.ok) this.handle(r.message, this.now(), "http", r.rttMs);
      else {
        this.problem(
          "http",
          `HTTP heartbeat failed (${r.code}: ${r.message})`,
          { status: r.status },
          `${r.code} ${r.status ?? ""}`,
        );
        if (r.status !== undefined && r.status >= 400 && r.status < 500) this.o.onRefused?.(this.o.uplink, r);
      }
    } catch (err) {
      this.problem("http", `HTTP heartbeat failed (${(err as Error).message})`);
    } finally {
      this.httpInFlight = false;
    }
  }

  /** Judges the heartbeat at its bound: unanswered by then, the agent hears of it at once. */
  private watchAnswer(seq: number): void {
    const at = this.now();
    this.answers.sent(seq, at, this.o.clock.now());
    const t = setTimeout(() => {
      if (!this.stopped && this.answers.overdue(seq)) this.o.onUnanswered?.(this.o.uplink);
    }, this.answers.boundMs(at));
    t.unref();
  }

  private remember(seq: number): void {
    this.watchAnswer(seq);
    this.sent.set(seq, this.now());
    // Unanswered heartbeats: keep the last few only.
    if (this.sent.size > 16) this.sent.delete(this.sent.keys().next().value!);
  }
}
