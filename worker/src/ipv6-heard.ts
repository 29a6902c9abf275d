// Whether each uplink is heard over IPv6 as well as IPv4. Agents with IPv6 heartbeat through an
// uplink over both; either family keeps the uplink up (the decision hears every heartbeat), so an
// IPv6 path that dies while IPv4 still works moves nothing: it is shown and recorded once. Pure.
import type { Ipv6Heard } from "#shared";
import type { Family } from "./attribution.ts";
import type { NewEvent } from "./site/events.ts";

/** What the edge heard of one uplink per family since it woke (memory only). */
export interface FamilyHeard {
  ipv4At: number | null;
  /** When the current unbroken stretch of IPv4 heartbeats began (a gap of a window ends one). */
  ipv4Since: number | null;
  ipv6At: number | null;
  /** An `ipv6-silent` event was recorded and no IPv6 heartbeat has come since. */
  ipv6Silent: boolean;
}

const NOTHING: FamilyHeard = { ipv4At: null, ipv4Since: null, ipv6At: null, ipv6Silent: false };

/**
 * A heartbeat through `uplink` over `family`; an IPv6 one after a recorded silence is an event. An
 * IPv4 gap longer than `cutMs` (the uplink's `downAfterMs`: it may have been judged down) is a cut
 * of the whole uplink, after which IPv6 gets a full window to return.
 */
export function heardOver(
  was: FamilyHeard | undefined,
  uplink: string,
  family: Family,
  cutMs: number,
  now: number,
): { heard: FamilyHeard; event: NewEvent | null } {
  const h = was ?? NOTHING;
  if (family === 4) {
    const unbroken = h.ipv4At !== null && h.ipv4Since !== null && now - h.ipv4At <= cutMs;
    return { heard: { ...h, ipv4At: now, ipv4Since: unbroken ? h.ipv4Since : now }, event: null };
  }
  const heard = { ...h, ipv6At: now, ipv6Silent: false };
  if (!h.ipv6Silent) return { heard, event: null };
  const silentForMs = now - (h.ipv6At ?? now);
  return {
    heard,
    event: {
      at: now,
      kind: "ipv6-back",
      message: `${uplink}: heard over IPv6 again after ${Math.round(silentForMs / 1000)} s`,
      data: { uplink, silentForMs },
    },
  };
}

/**
 * An uplink heard over IPv6 before, silent over IPv6 for a window while IPv4 has been heard
 * without a break for longer: one `ipv6-silent` event (a cut of the whole uplink is the uplink's
 * own event, and an uplink coming back gets a window for its IPv6 to return too).
 */
export function judgeIpv6(
  h: FamilyHeard,
  uplink: string,
  windowMs: number,
  now: number,
): { heard: FamilyHeard; event: NewEvent | null } {
  const { ipv4At, ipv4Since, ipv6At } = h;
  if (h.ipv6Silent || ipv6At === null || ipv4At === null || ipv4Since === null) return { heard: h, event: null };
  const ipv4Heard = now - ipv4At <= windowMs && now - ipv4Since > windowMs;
  if (!ipv4Heard || now - ipv6At <= windowMs) return { heard: h, event: null };
  return {
    heard: { ...h, ipv6Silent: true },
    event: {
      at: now,
      kind: "ipv6-silent",
      message: `${uplink}: no IPv6 heartbeat for ${Math.round((now - ipv6At) / 1000)} s while IPv4 is heard (IPv6 through ${uplink} is broken; no switch)`,
      data: { uplink, lastHeardAt: ipv6At },
    },
  };
}

/** For the status: IPv6 heard within the window, heard before but not since, or never (since the edge woke). */
export function ipv6State(ipv6At: number | null, windowMs: number, now: number): Ipv6Heard {
  if (ipv6At === null) return "none";
  return now - ipv6At <= windowMs ? "heard" : "silent";
}
