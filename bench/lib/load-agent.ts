// A load-generating agent for the edge benchmarks: the real agent's signer, the real wire protocol
// (signed WebSocket frames or signed HTTP heartbeats), no host side. Each heartbeat's answer is
// matched by its ackSeq, so every send has a measured round trip.
import WebSocket from "ws";
import {
  type EdgeMessage,
  HEADER_AGENT,
  HEADER_SIG,
  HEADER_TS,
  HEADER_UPLINK,
  connectBody,
  type Directive,
  type Heartbeat,
} from "#shared";
import { channelInterval } from "../../agent/src/edge/cadence.ts";
import { httpCall } from "../../agent/src/edge/http.ts";
import { EdgeSigner } from "../../agent/src/edge/signer.ts";

/** The public address each uplink's traffic seems to come from; Cloudflare sets this header in production. */
export const publicIp = (uplink: string) => `198.51.100.${uplink.endsWith("2") ? 5 : 1}`;

export class LoadAgent {
  directive: Directive | null = null;
  /** The per-uplink intervals the edge last sent (a metered standby is heartbeated slowly). */
  private assigned: Record<string, number> = {};
  private seq = 0;
  private readonly sockets = new Map<string, WebSocket>();
  private readonly waiting = new Map<
    number,
    { sentAt: number; done: (ms: number) => void; fail: (e: Error) => void }
  >();
  readonly edge: string;
  readonly site: string;
  readonly uplinks: string[];
  private readonly signer: EdgeSigner;

  // Plain fields: Node's type stripping has no parameter properties.
  private constructor(edge: string, site: string, uplinks: string[], signer: EdgeSigner) {
    this.edge = edge;
    this.site = site;
    this.uplinks = uplinks;
    this.signer = signer;
  }

  get id(): string {
    return this.signer.agent;
  }

  /** Enrols the agent through the admin API and keeps its secret's key. */
  static async enroll(
    edge: { url: string; api: (m: string, p: string, b?: unknown) => Promise<any> },
    site: string,
    id: string,
    role: "probe" | "server",
    uplinks: string[],
    tunnelRestarter = false,
  ): Promise<LoadAgent> {
    const { secret } = await edge.api("POST", `/v1/sites/${site}/agents`, {
      id,
      role,
      ...(role === "probe" ? { uplink: uplinks[0] } : { tunnelRestarter }),
    });
    return new LoadAgent(edge.url, site, uplinks, await EdgeSigner.fromSecret(site, id, secret));
  }

  /** Opens one WebSocket per uplink (or the given ones). */
  async connect(uplinks = this.uplinks): Promise<void> {
    await Promise.all(uplinks.map((u) => this.open(u)));
  }

  connected(uplink: string): boolean {
    return this.sockets.has(uplink);
  }

  private async open(uplink: string): Promise<void> {
    const ts = Date.now();
    const sig = await this.signer.sign(connectBody(uplink), ts);
    const url = `${this.edge.replace(/^http/, "ws")}/v1/sites/${this.site}/agents/${this.id}/connect`;
    const ws = new WebSocket(url, {
      headers: {
        [HEADER_UPLINK]: uplink,
        [HEADER_TS]: String(ts),
        [HEADER_SIG]: sig,
        "cf-connecting-ip": publicIp(uplink),
      },
      perMessageDeflate: false,
    });
    ws.on("message", (data) => void this.receive(String(data)));
    ws.on("close", (code) => this.failAll(new Error(`${this.id}/${uplink}: socket closed (${code})`)));
    // After the handshake an error is followed by 'close', which fails what waits.
    ws.on("error", () => {});
    await new Promise<void>((ok, bad) => {
      ws.once("open", () => ok());
      ws.once("error", bad);
      ws.once("unexpected-response", (_req, res) =>
        bad(new Error(`${this.id}/${uplink}: connect refused with ${res.statusCode}`)),
      );
    });
    this.sockets.set(uplink, ws);
  }

  private body(uplink: string, extra: Partial<Heartbeat>): { seq: number; body: string } {
    const seq = this.seq++;
    const hb: Heartbeat = {
      type: "heartbeat",
      seq,
      uplink,
      // A development version: the edge sends it the fields newer agents take (per-uplink intervals).
      version: "0.0.0-bench",
      lastError: null,
      rttEdgeMs: 12,
      rttGatewayMs: 1,
      appliedGeneration: this.directive?.generation ?? null,
      tunnelGeneration: this.directive?.restartTunnels ? this.directive.generation : null,
      routedUplink: this.uplinks.length > 1 ? (this.directive?.activeUplink ?? null) : null,
      ...extra,
    };
    return { seq, body: JSON.stringify(hb) };
  }

  /** One heartbeat over the uplink's WebSocket; resolves with its round trip in ms. */
  async beat(uplink: string, extra: Partial<Heartbeat> = {}): Promise<number> {
    const ws = this.sockets.get(uplink);
    if (!ws) throw new Error(`${this.id}: no socket for ${uplink}`);
    const { seq, body } = this.body(uplink, extra);
    const frame = JSON.stringify(await this.signer.frame(body, Date.now()));
    return new Promise((done, fail) => {
      this.waiting.set(seq, { sentAt: performance.now(), done, fail });
      ws.send(frame);
    });
  }

  /** One heartbeat over the uplink's WebSocket if it has one, else over HTTP. */
  heartbeat(uplink: string): Promise<number> {
    return this.sockets.has(uplink) ? this.beat(uplink) : this.beatHttp(uplink);
  }

  /** One heartbeat over plain HTTP; resolves with its round trip in ms. */
  async beatHttp(uplink: string, extra: Partial<Heartbeat> = {}): Promise<number> {
    const { body } = this.body(uplink, extra);
    const ts = Date.now();
    const sig = await this.signer.sign(body, ts);
    const sentAt = performance.now();
    const res = await httpCall(`${this.edge}/v1/sites/${this.site}/heartbeat`, {
      method: "POST",
      body,
      // An overloaded edge answers late, not never: a benchmark measures that, it does not give up.
      timeoutMs: 30_000,
      headers: {
        "content-type": "application/json",
        [HEADER_AGENT]: this.id,
        [HEADER_TS]: String(ts),
        [HEADER_SIG]: sig,
        "cf-connecting-ip": publicIp(uplink),
      },
    });
    const ms = performance.now() - sentAt;
    if (res.status !== 200) throw new Error(`${this.id}/${uplink}: heartbeat refused with ${res.status}: ${res.body}`);
    const v = await this.signer.verifyDown(
      res.body,
      Number(res.headers[HEADER_TS]),
      String(res.headers[HEADER_SIG] ?? ""),
    );
    if (!v.ok) throw new Error(`${this.id}: ${v.reason}`);
    this.follow(v.message);
    return ms;
  }

  private async receive(data: string): Promise<void> {
    const v = await this.signer.verifyFrame(data);
    if (!v.ok) {
      const err = new Error(
        `${this.id}: ${v.unsigned?.type === "error" ? `${v.unsigned.error.code}: ${v.unsigned.error.message}` : v.reason}`,
      );
      return this.failAll(err);
    }
    this.follow(v.message);
    if (v.message.type !== "directive" || v.message.ackSeq === null) return;
    const w = this.waiting.get(v.message.ackSeq);
    if (!w) return;
    this.waiting.delete(v.message.ackSeq);
    w.done(performance.now() - w.sentAt);
  }

  /**
   * The interval this stream heartbeats at now, as the real agent picks it (edge/cadence.ts): the
   * edge's, except that with the active uplink cut every channel beats at the site's rate.
   */
  intervalFor(uplink: string, siteMs: number, cut: (uplink: string) => boolean): number {
    const active = this.directive?.activeUplink ?? null;
    const lastContact = new Map(active !== null && !cut(active) ? [[active, Number.POSITIVE_INFINITY]] : []);
    return channelInterval(uplink, {
      siteMs,
      assigned: this.assigned,
      active,
      channels: this.uplinks,
      lastContact,
      now: 0,
    });
  }

  /** Takes a newer directive as applied at once: the benchmarks measure the edge, not the host. */
  private follow(m: EdgeMessage): void {
    if (m.type === "directive") this.assigned = m.uplinkHeartbeatMs ?? {};
    if (m.type === "directive" && m.directive && (this.directive?.generation ?? -1) <= m.directive.generation)
      this.directive = m.directive;
  }

  private failAll(err: Error): void {
    for (const w of this.waiting.values()) w.fail(err);
    this.waiting.clear();
  }

  close(): void {
    for (const ws of this.sockets.values()) ws.close();
    this.sockets.clear();
  }
}

/** A site of probes (one per uplink) and servers (on every uplink), enrolled and connected. */
export async function enrolSite(
  edge: { url: string; api: (m: string, p: string, b?: unknown) => Promise<any> },
  site: string,
  o: {
    servers: number;
    policy?: Record<string, number>;
    tunnels?: Record<string, unknown>;
    connect?: boolean;
    /** isp2 metered: a standby heartbeated slowly. */
    metered?: boolean;
  },
): Promise<LoadAgent[]> {
  const uplinks = ["isp1", "isp2"];
  await edge.api("PUT", `/v1/sites/${site}`, {
    uplinks: [
      { id: "isp1", priority: 1, name: "Fiber" },
      { id: "isp2", priority: 2, name: "LTE", ...(o.metered ? { metered: true } : {}) },
    ],
    ...(o.policy ? { policy: o.policy } : {}),
    ...(o.tunnels ? { tunnels: o.tunnels } : {}),
  });
  const agents = [
    ...(await Promise.all(uplinks.map((u, i) => LoadAgent.enroll(edge, site, `sbc${i + 1}`, "probe", [u])))),
    ...(await Promise.all(
      Array.from({ length: o.servers }, (_, i) =>
        LoadAgent.enroll(edge, site, `srv${i + 1}`, "server", uplinks, i === 0),
      ),
    )),
  ];
  if (o.connect !== false) await Promise.all(agents.map((a) => a.connect()));
  return agents;
}

/** Every (agent, uplink) pair that heartbeats: probes once, servers through each uplink. */
export const streams = (agents: LoadAgent[]) =>
  agents.flatMap((a) => a.uplinks.map((uplink) => ({ agent: a, uplink })));
