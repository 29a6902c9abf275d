// How often each channel heartbeats. The edge says (heartbeatMs for the site, uplinkHeartbeatMs
// where an uplink differs: a metered one standing by is heartbeated slowly). One exception is the
// agent's own: while the active uplink's channel goes unanswered, every channel beats at the
// site's rate, so the edge hears through the standby, judges the cut on time and the failover
// directive finds an open path. Pure.

export interface CadenceInput {
  /** The site's interval, as the edge last said (the config's until then). */
  siteMs: number;
  /** Per-uplink intervals the edge last sent (empty: every uplink at siteMs). */
  assigned: Readonly<Record<string, number>>;
  /** The uplink the last directive named active (null before any). */
  active: string | null;
  /** The uplinks this agent has a channel through. */
  channels: readonly string[];
  /** When the edge last answered through each uplink. */
  lastContact: ReadonlyMap<string, number>;
  now: number;
}

/** The active uplink's channel is unanswered for this many of its intervals: speed the others up. */
export const QUIET_AFTER_BEATS = 2;

export function channelInterval(uplink: string, i: CadenceInput): number {
  const assigned = Object.hasOwn(i.assigned, uplink) ? i.assigned[uplink]! : i.siteMs;
  if (assigned <= i.siteMs || i.active === null || i.active === uplink || !i.channels.includes(i.active))
    return assigned;
  const heard = i.lastContact.get(i.active);
  const quiet = heard === undefined || i.now - heard > QUIET_AFTER_BEATS * i.siteMs;
  return quiet ? i.siteMs : assigned;
}
