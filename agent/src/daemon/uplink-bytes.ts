// When a heartbeat carries the host's interface counters (`uplinkBytes`): they are cumulative, so
// one now and then is enough, and they travel through the active uplink — not through the metered
// one they are counted for, while it stands by.
import type { UplinkBytes } from "#shared";
import type { InterfaceBytes } from "../host/interface-bytes.ts";

/** Through the active uplink: once a minute. */
export const UPLINK_BYTES_EVERY_MS = 60_000;
/** An agent with no path through the active uplink (a probe behind a standby) reports through its own, rarely. */
export const UPLINK_BYTES_OWN_PATH_EVERY_MS = 600_000;

export class UplinkBytesReport {
  private lastAt = Number.NEGATIVE_INFINITY;
  private readonly uplinks: readonly { id: string; interface: string }[];
  private readonly read: (iface: string) => InterfaceBytes | null;
  private readonly now: () => number;

  constructor(
    uplinks: readonly { id: string; interface: string }[],
    read: (iface: string) => InterfaceBytes | null,
    now: () => number,
  ) {
    this.uplinks = uplinks;
    this.read = read;
    this.now = now;
  }

  /** The counters for a heartbeat through `via` now, if one is due (`active`: the directive's uplink, if known). */
  for(via: string, active: string | null): { uplinkBytes?: UplinkBytes[] } {
    const onActive = active === null || via === active;
    // A host with a path through the active uplink sends them there only.
    if (!onActive && this.uplinks.some((u) => u.id === active)) return {};
    const every = onActive ? UPLINK_BYTES_EVERY_MS : UPLINK_BYTES_OWN_PATH_EVERY_MS;
    if (this.now() - this.lastAt < every) return {};
    const uplinkBytes = this.uplinks.flatMap((u) => {
      const c = this.read(u.interface);
      return c ? [{ uplink: u.id, ...c }] : [];
    });
    if (!uplinkBytes.length) return {};
    this.lastAt = this.now();
    return { uplinkBytes };
  }
}
