import { runInDurableObject } from "cloudflare:test";
import { afterEach, beforeEach, vi } from "vitest";
import { env, exports } from "cloudflare:workers";
import {
  EdgeMessage,
  HEADER_AGENT,
  HEADER_SIG,
  HEADER_TS,
  HEADER_UPLINK,
  connectBody,
  deriveSigningKey,
  importSigningKey,
  sign,
  verify,
  type Heartbeat,
  type SigningKey,
  type SiteConfigInput,
  type SiteStatus,
} from "#shared";

export const ADMIN = "test-admin-token-0123456789";
export const VIEWER = "test-viewer-token-0123456789";
export const BASE = "https://edge.test";

export function stubFor(site: string) {
  return env.SITES.get(env.SITES.idFromName(site));
}

export async function call(
  method: string,
  path: string,
  body?: unknown,
  token: string | null = ADMIN,
  headers: Record<string, string> = {},
) {
  const h: Record<string, string> = { ...headers };
  if (token) h.authorization = `Bearer ${token}`;
  if (body !== undefined && !h["content-type"]) h["content-type"] = "application/json";
  return send(
    new Request(`${BASE}${path}`, {
      method,
      headers: h,
      body: body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body),
    }),
  );
}

/** Any request to the Worker; the answer read as text, as JSON when it is, and its WebSocket if one was accepted. */
export async function send(req: Request) {
  const res = await exports.default.fetch(req);
  const text = await res.text();
  let json: any = null;
  try {
    json = JSON.parse(text);
  } catch {
    json = null;
  }
  return { status: res.status, json, text, headers: res.headers, webSocket: res.webSocket };
}

/** Every row of every table of a site's object: what "nothing changed" compares. */
export function storedRows(site: string): Promise<Record<string, unknown[]>> {
  return runInDurableObject(stubFor(site), (_i, state) => {
    const sql = state.storage.sql;
    const tables = sql
      .exec<{ name: string }>(
        `SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE '\\_cf\\_%' ESCAPE '\\' ORDER BY name`,
      )
      .toArray();
    return Object.fromEntries(tables.map(({ name }) => [name, sql.exec(`SELECT * FROM "${name}"`).toArray()]));
  });
}

/** A notify target nothing listens on: every send fails (what the retry schedule needs), and stays pending. */
export const REFUSING = "http://127.0.0.1:9/hooks/secret-path-4f9a";

export const twoUplinks = (
  policy: Partial<SiteConfigInput["policy"]> = {},
  extra: Partial<SiteConfigInput> = {},
): SiteConfigInput => ({
  uplinks: [
    { id: "isp1", priority: 1, name: "Fiber" },
    { id: "isp2", priority: 2, name: "LTE" },
  ],
  policy: { heartbeatMs: 1_000, downAfterMs: 3_000, failbackAfterMs: 60_000, minDwellMs: 10_000, ...policy },
  ...extra,
});

export async function createSite(site: string, config: SiteConfigInput = twoUplinks()) {
  const r = await call("PUT", `/v1/sites/${site}`, config);
  if (r.status !== 200) throw new Error(`PUT site: ${r.status} ${r.text}`);
  return r.json;
}

export async function status(site: string): Promise<SiteStatus> {
  const r = await call("GET", `/v1/sites/${site}/status`);
  if (r.status !== 200) throw new Error(`status: ${r.status} ${r.text}`);
  return r.json;
}

export async function events(site: string, limit = 100) {
  return (await call("GET", `/v1/sites/${site}/events?limit=${limit}`)).json as {
    kind: string;
    message: string;
    data: any;
  }[];
}

/** An enrolled agent that signs like the real one does, over HTTP or WebSocket. */
export class TestAgent {
  seq = 0;
  appliedGeneration: number | null = null;
  tunnelGeneration: number | null = null;
  lastError: string | null = null;
  private constructor(
    readonly site: string,
    readonly id: string,
    readonly secret: string,
    readonly key: SigningKey,
  ) {}

  static async enroll(
    site: string,
    id: string,
    role: "probe" | "server",
    opts: { uplink?: string; tunnelRestarter?: boolean } = {},
  ) {
    const r = await call("POST", `/v1/sites/${site}/agents`, { id, role, ...opts });
    if (r.status !== 201) throw new Error(`enroll: ${r.status} ${r.text}`);
    return TestAgent.withSecret(site, id, r.json.secret);
  }

  /** An agent enrolled by the caller, from the secret the enrolment answered with. */
  static async withSecret(site: string, id: string, secret: string) {
    return new TestAgent(site, id, secret, await importSigningKey(await deriveSigningKey(secret)));
  }

  heartbeatBody(uplink: string, extra: Partial<Heartbeat> = {}): string {
    const hb: Heartbeat = {
      type: "heartbeat",
      seq: this.seq++,
      uplink,
      version: "0.2.0-test",
      appliedGeneration: this.appliedGeneration,
      tunnelGeneration: this.tunnelGeneration,
      lastError: this.lastError,
      ...extra,
    };
    return JSON.stringify(hb);
  }

  async signed(body: string, ts = Date.now()) {
    return { ts, sig: await sign(this.key, { direction: "up", site: this.site, agent: this.id, ts, body }) };
  }

  async postRaw(body: string, opts: { ts?: number; sig?: string; ip?: string } = {}) {
    const s = await this.signed(body, opts.ts);
    const headers: Record<string, string> = {
      "content-type": "application/json",
      [HEADER_AGENT]: this.id,
      [HEADER_TS]: String(s.ts),
      [HEADER_SIG]: opts.sig ?? s.sig,
    };
    if (opts.ip) headers["cf-connecting-ip"] = opts.ip;
    return call("POST", `/v1/sites/${this.site}/heartbeat`, body, null, headers);
  }

  /** A heartbeat over HTTP; checks the answer's signature and returns its directive. */
  async beat(uplink: string, opts: { ip?: string; extra?: Partial<Heartbeat> } = {}) {
    const r = await this.postRaw(this.heartbeatBody(uplink, opts.extra), { ip: opts.ip });
    if (r.status !== 200) throw new Error(`heartbeat: ${r.status} ${r.text}`);
    const ts = Number(r.headers.get(HEADER_TS));
    const ok = await verify(
      this.key,
      { direction: "down", site: this.site, agent: this.id, ts, body: r.text },
      r.headers.get(HEADER_SIG) ?? "",
    );
    if (!ok) throw new Error("edge answer has a bad signature");
    const msg = EdgeMessage.parse(r.json);
    if (msg.type !== "directive") throw new Error("expected a directive");
    return msg.directive;
  }

  async connect(uplink: string, opts: { ip?: string; ts?: number; sig?: string } = {}) {
    const body = connectBody(uplink);
    const s = await this.signed(body, opts.ts);
    const headers: Record<string, string> = {
      upgrade: "websocket",
      [HEADER_UPLINK]: uplink,
      [HEADER_TS]: String(s.ts),
      [HEADER_SIG]: opts.sig ?? s.sig,
    };
    if (opts.ip) headers["cf-connecting-ip"] = opts.ip;
    const res = await exports.default.fetch(
      new Request(`${BASE}/v1/sites/${this.site}/agents/${this.id}/connect`, { headers }),
    );
    return res;
  }
}

/** Collects a client WebSocket's frames, verified and parsed. */
export class Channel {
  readonly messages: EdgeMessage[] = [];
  closed: { code: number; reason: string } | null = null;
  private waiters: (() => void)[] = [];

  constructor(
    readonly ws: WebSocket,
    readonly agent: TestAgent,
  ) {
    ws.accept();
    ws.addEventListener("message", async (e) => {
      const frame = JSON.parse(e.data as string);
      if (frame.sig) {
        const ok = await verify(
          agent.key,
          { direction: "down", site: agent.site, agent: agent.id, ts: frame.ts, body: frame.body },
          frame.sig,
        );
        if (!ok) throw new Error("bad signature on a pushed frame");
        this.messages.push(EdgeMessage.parse(JSON.parse(frame.body)));
      } else this.messages.push(EdgeMessage.parse(frame));
      this.wake();
    });
    ws.addEventListener("close", (e) => {
      this.closed = { code: e.code, reason: e.reason };
      this.wake();
    });
  }

  private wake() {
    for (const w of this.waiters.splice(0)) w();
  }

  async send(uplink: string, extra: Partial<Heartbeat> = {}) {
    const body = this.agent.heartbeatBody(uplink, extra);
    this.ws.send(JSON.stringify({ ...(await this.agent.signed(body)), body }));
  }

  async sendRaw(data: string) {
    this.ws.send(data);
  }

  async until<T>(pick: () => T | undefined | null | false, what: string, ms = 2_000): Promise<T> {
    // Workers' clocks stand still between I/O: count waits instead of reading the time.
    for (let waited = 0; ; waited += 50) {
      const v = pick();
      if (v) return v;
      if (waited > ms) throw new Error(`timed out waiting for ${what}; got ${JSON.stringify(this.messages)}`);
      await new Promise<void>((r) => {
        this.waiters.push(r);
        setTimeout(r, 50);
      });
    }
  }
}

/**
 * Puts the file's tests on a fake clock (Date only: workerd's I/O keeps running) starting at
 * `t0`; returns `at(ms)`, which sets it to `t0 + ms`.
 */
export function edgeClock(t0: number): (ms: number) => void {
  const at = (ms: number) => void vi.setSystemTime(t0 + ms);
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ["Date"] });
    at(0);
  });
  afterEach(() => vi.useRealTimers());
  return at;
}
