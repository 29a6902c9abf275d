// The agent's IPv6 heartbeats: where an uplink has a usable global IPv6 address and an IPv6
// default route, and the edge has an IPv6 address, a second channel through that uplink bound to
// that address. Level-triggered: every refresh reads the host, lets the role route what it found
// (a server's per-uplink IPv6 rules), and opens, rebinds or closes each uplink's channel to match,
// so SLAAC renumbering or a reboot's new address is followed within a refresh. A path that
// vanishes is held for a moment first: NetworkManager takes a device's IPv6 address away briefly
// when it applies a change there (an IPv4 metric included), and the channel should outlive that.
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
  /** Uplink `index` has no IPv6 channel any more (its address or route went). */
  closed: (index: number) => void;
  log: Logger;
  now: () => number;
}

/** How long an uplink's IPv6 path must stay gone before its rule and channel go. */
export const IPV6_GONE_AFTER_MS = 3_000;

export class Ipv6Channels {
  private readonly open = new Map<string, { source: string; channel: UplinkChannel }>();
  /** Per uplink, the path last read, and since when it has been missing (absent while it is there). */
  private readonly held = new Map<string, { path: Ipv6Path; missingSince: number | null }>();
  private recheck: NodeJS.Timeout | null = null;
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
      paths = this.hold(await Promise.all(uplinks.map((u) => this.o.read(u))));
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
      if (source === null) {
        if (now) this.o.closed(i);
        continue;
      }
      this.open.set(u.id, { source, channel: this.o.open(i, source) });
      log.info("IPv6 channel", { uplink: u.id, source, edge: edge6 });
    }
  }

  /** The paths read, with a vanished one kept until it has been gone IPV6_GONE_AFTER_MS (then read again). */
  private hold(read: (Ipv6Path | null)[]): (Ipv6Path | null)[] {
    const now = this.o.now();
    return this.o.uplinks.map((u, i) => {
      const path = read[i] ?? null;
      const was = this.held.get(u.id);
      if (path) {
        this.held.set(u.id, { path, missingSince: null });
        return path;
      }
      if (!was) return null;
      const missingSince = was.missingSince ?? now;
      if (now - missingSince >= IPV6_GONE_AFTER_MS) {
        this.held.delete(u.id);
        return null;
      }
      this.held.set(u.id, { path: was.path, missingSince });
      if (!this.recheck && !this.stopped) {
        this.recheck = setTimeout(
          () => {
            this.recheck = null;
            void this.refresh();
          },
          missingSince + IPV6_GONE_AFTER_MS - now,
        );
        this.recheck.unref();
      }
      return was.path;
    });
  }

  /** Closes every IPv6 channel (the role removes its routing afterwards). */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.recheck) clearTimeout(this.recheck);
    await this.running;
    await Promise.all([...this.open.values()].map((c) => c.channel.stop()));
    this.open.clear();
  }
}
