// Signs what the agent sends ("up") and verifies what the edge sends ("down"), with the shared
// signing code: the key is derived from the secret, the secret itself is never kept around.
import { EdgeMessage, SignedFrame, deriveSigningKey, importSigningKey, sign, verify, type SigningKey } from "#shared";

export type Verified = { ok: true; message: EdgeMessage; ts: number } | { ok: false; reason: string };

export class EdgeSigner {
  readonly site: string;
  readonly agent: string;
  private readonly key: SigningKey;

  // Plain fields: the benchmarks load this file with Node's type stripping, which has no parameter properties.
  private constructor(site: string, agent: string, key: SigningKey) {
    this.site = site;
    this.agent = agent;
    this.key = key;
  }

  static async fromSecret(site: string, agent: string, secret: string): Promise<EdgeSigner> {
    return new EdgeSigner(site, agent, await importSigningKey(await deriveSigningKey(secret)));
  }

  async sign(body: string, ts: number): Promise<string> {
    return sign(this.key, { direction: "up", site: this.site, agent: this.agent, ts, body });
  }

  /** A signed frame for the WebSocket channel: `body` is the exact string that was signed. */
  async frame(body: string, ts: number): Promise<SignedFrame> {
    return { ts, body, sig: await this.sign(body, ts) };
  }

  /** An edge message is acted on only if its `down` signature checks and its body parses. */
  async verifyDown(body: string, ts: number, sig: string): Promise<Verified> {
    if (!Number.isSafeInteger(ts) || !sig) return { ok: false, reason: "unsigned" };
    const good = await verify(this.key, { direction: "down", site: this.site, agent: this.agent, ts, body }, sig);
    if (!good) return { ok: false, reason: "bad signature" };
    let json: unknown;
    try {
      json = JSON.parse(body);
    } catch {
      return { ok: false, reason: "signed body is not JSON" };
    }
    const parsed = EdgeMessage.safeParse(json);
    if (!parsed.success) return { ok: false, reason: "signed body is not an edge message" };
    return { ok: true, message: parsed.data, ts };
  }

  /** A WebSocket frame from the edge: a SignedFrame, or an unsigned error (never acted on). */
  async verifyFrame(data: string): Promise<Verified & { unsigned?: EdgeMessage }> {
    let json: unknown;
    try {
      json = JSON.parse(data);
    } catch {
      return { ok: false, reason: "frame is not JSON" };
    }
    const frame = SignedFrame.safeParse(json);
    if (frame.success) return this.verifyDown(frame.data.body, frame.data.ts, frame.data.sig);
    const plain = EdgeMessage.safeParse(json);
    return { ok: false, reason: "unsigned", ...(plain.success ? { unsigned: plain.data } : {}) };
  }
}
