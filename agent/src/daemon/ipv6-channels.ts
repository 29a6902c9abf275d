// The agent's IPv6 heartbeats: where an uplink has a usable global IPv6 address and an IPv6
// default route, and the edge has an IPv6 address, a second channel through that uplink bound to
// that address. Level-triggered: every refresh reads the host, lets the role route what it found
// (a server's per-uplink IPv6 rules), and opens, rebinds or closes each uplink's channel to match,
// so SLAAC renumbering or a reboot's new address is followed within a refresh.
import type { UplinkConfig } from "../config/schema.ts";
import type { UplinkChannel } from "../edge/channel.ts";
import type { Ipv6Path } from "../host/policy-routing6.ts";
import { describeError } from "../lib/errors.ts";
import type { Logger } from "../lib/log.ts";

export interface Ipv6ChannelsOptions {
  uplinks: readonly UplinkConfig[];
  /** The uplink's IPv6 path on the host now, or null. */
  read: (u: UplinkConfig) => Promise<Ipv6Path | null>;
  /** The edge's IPv6 address, or null when it has none. */
  edge6: () => Promise<string | null>;
  /** The role routes the paths before channels use them (config order; a probe routes nothing). */
  route: (paths: readonly (Ipv6Path | null)[], edge6: string | null) => Promise<void>;
  /** A started channel through uplink `index`, bound to `source`. */
  open: (index: number, source: string) => UplinkChannel;
  log: Logger;
}

export class Ipv6Channels {
  private readonly open = new Map<string, { source: string; channel: UplinkChannel }>();
  private running: Promise<void> | null = null;
  private again = false;
  private stopped = false;
  private lastError: string | null = null;
  private readonly o: Ipv6ChannelsOptions;

  constructor(o: Ipv6ChannelsOptions) {
    this.o = o;
  }

  /** The uplink's IPv6 channel, if it has one now. */
  channel(uplink: string): UplinkChannel | undefined {
    return this.open.get(uplink)?.channel;
  }

  /** One refresh at a time; a call during one runs one more after it (the host may have changed since it read). */
  refresh(): Promise<void> {
    if (this.running) {
      this.again = true;
      return this.running;
    }
    this.running = (async () => {
      do {
        this.again = false;
        await this.once();
      } while (this.again && !this.stopped);
    })().finally(() => (this.running = null));
    return this.running;
  }

  private async once(): Promise<void> {
    const { uplinks, log } = this.o;
    let paths: (Ipv6Path | null)[];
    let edge6: string | null;
    try {
      paths = await Promise.all(uplinks.map((u) => this.o.read(u)));
      edge6 = paths.some((p) => p !== null) ? await this.o.edge6() : null;
      await this.o.route(paths, edge6);
    } catch (err) {
      // Channels stay as they are: one opened unrouted would leave through the default route.
      const error = describeError(err);
      if (error !== this.lastError) log.warn("cannot set up IPv6 heartbeats", { error });
      this.lastError = error;
      return;
    }
    this.lastError = null;
    if (this.stopped) return;
    for (const [i, u] of uplinks.entries()) {
      const source = edge6 === null ? null : (paths[i]?.source ?? null);
      const now = this.open.get(u.id);
      if (now?.source === source) continue;
      if (now) {
        this.open.delete(u.id);
        void now.channel.stop();
        log.info("IPv6 channel closed", { uplink: u.id, source: now.source, ...(source ? { newSource: source } : {}) });
      }
      if (source === null) continue;
      this.open.set(u.id, { source, channel: this.o.open(i, source) });
      log.info("IPv6 channel", { uplink: u.id, source, edge: edge6 });
    }
  }

  /** Closes every IPv6 channel (the role removes its routing afterwards). */
  async stop(): Promise<void> {
    this.stopped = true;
    await this.running;
    await Promise.all([...this.open.values()].map((c) => c.channel.stop()));
    this.open.clear();
  }
}
