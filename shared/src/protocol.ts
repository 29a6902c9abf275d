// Names both ends of the agent protocol must spell alike: headers, close codes, the connect body.
// docs/protocol.md describes them; change them together.

export const HEADER_AGENT = "x-wanwatch-agent";
export const HEADER_TS = "x-wanwatch-ts";
export const HEADER_SIG = "x-wanwatch-sig";
export const HEADER_UPLINK = "x-wanwatch-uplink";
/** Edge time (ms) on every answer of the agent endpoints, refusals included: how a wrong clock corrects itself. */
export const HEADER_NOW = "x-wanwatch-now";

/** WebSocket close code for an agent that was revoked, or whose secret was rotated out. */
export const CLOSE_REVOKED = 4401;
/** WebSocket close code for a channel replaced by a newer connection on the same uplink. */
export const CLOSE_REPLACED = 4409;

/** What an agent signs to open its channel on one uplink. */
export const connectBody = (uplink: string) => `connect ${uplink}`;

/**
 * A witness report (a heartbeat's `unanswered`) counts once it has stood this long, so that a
 * heartbeat merely late by up to this much past the agent's bound arrives first; the agent repeats
 * the report then, which is also when the edge judges it.
 */
export const WITNESS_CONFIRM_MS = 200;
