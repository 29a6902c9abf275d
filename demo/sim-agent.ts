// A simulated agent for the demo's simulation mode: the real wire protocol (signed heartbeats over
// HTTP to the real edge), but the "network" is a flag per uplink and "routes" are a variable.
import {
  EdgeMessage,
  HEADER_AGENT,
  HEADER_SIG,
  HEADER_TS,
  deriveSigningKey,
  importSigningKey,
  sign,
  verify,
  type Directive,
  type SigningKey,
} from "#shared";

export interface World {
  /** Whether each uplink carries traffic to the edge right now. */
  up: Record<string, boolean>;
  /** The public address the edge sees per uplink (documentation range). */
  publicIp: Record<string, string>;
}

export interface Hooks {
  onApply: (a: SimAgent, d: Directive) => void;
  onRestart: (a: SimAgent, d: Directive) => void;
}

export class SimAgent {
  applied: number | null = null;
  tunnels: number | null = null;
  routedUplink: string | null = null;
  private seq = 0;
  readonly edge: string;
  readonly site: string;
  readonly id: string;
  readonly uplinks: string[];
  private readonly key: SigningKey;
  private readonly hooks: Hooks;

  // Plain fields: this file runs under Node's type stripping, which has no parameter properties.
  private constructor(edge: string, site: string, id: string, uplinks: string[], key: SigningKey, hooks: Hooks) {
    this.edge = edge;
    this.site = site;
    this.id = id;
    this.uplinks = uplinks;
    this.key = key;
    this.hooks = hooks;
  }

  static async create(edge: string, site: string, id: string, uplinks: string[], secret: string, hooks: Hooks) {
    return new SimAgent(edge, site, id, uplinks, await importSigningKey(await deriveSigningKey(secret)), hooks);
  }

  /** One heartbeat through each uplink that works; applies what the edge answers. */
  async beat(world: World): Promise<void> {
    for (const uplink of this.uplinks) {
      if (!world.up[uplink]) continue;
      const body = JSON.stringify({
        type: "heartbeat",
        seq: this.seq++,
        uplink,
        version: "demo",
        appliedGeneration: this.applied,
        tunnelGeneration: this.tunnels,
        lastError: null,
        routedUplink: this.uplinks.length > 1 ? this.routedUplink : null,
      });
      const ts = Date.now();
      const sig = await sign(this.key, { direction: "up", site: this.site, agent: this.id, ts, body });
      const res = await fetch(`${this.edge}/v1/sites/${this.site}/heartbeat`, {
        method: "POST",
        body,
        // Locally the edge takes the client address from this header; Cloudflare sets it in production.
        headers: {
          "content-type": "application/json",
          "cf-connecting-ip": world.publicIp[uplink]!,
          [HEADER_AGENT]: this.id,
          [HEADER_TS]: String(ts),
          [HEADER_SIG]: sig,
        },
      });
      const text = await res.text();
      if (!res.ok) throw new Error(`${this.id}: edge answered ${res.status}: ${text}`);
      const down = {
        direction: "down" as const,
        site: this.site,
        agent: this.id,
        ts: Number(res.headers.get(HEADER_TS)),
        body: text,
      };
      if (!(await verify(this.key, down, res.headers.get(HEADER_SIG) ?? "")))
        throw new Error(`${this.id}: unsigned answer ignored`);
      const msg = EdgeMessage.parse(JSON.parse(text));
      if (msg.type === "directive" && msg.directive && this.uplinks.length > 1) this.follow(msg.directive);
    }
  }

  private follow(d: Directive): void {
    if ((this.applied ?? -1) < d.generation) {
      this.routedUplink = d.activeUplink;
      this.applied = d.generation;
      this.hooks.onApply(this, d);
    }
    if (d.restartTunnels && (this.tunnels ?? -1) < d.generation) {
      this.tunnels = d.generation;
      this.hooks.onRestart(this, d);
    }
  }
}
