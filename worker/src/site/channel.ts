// Agents' channels: the WebSocket upgrade the Worker forwards, and the frames that follow.
import {
  HEADER_NOW,
  HEADER_SIG,
  HEADER_TS,
  HEADER_UPLINK,
  MAX_HEARTBEAT_BYTES,
  SignedFrame,
  connectBody,
  issueLines,
} from "#shared";
import { fail, failureResponse, ok, parseJson, type Failure, type Result } from "../failure.ts";
import type { Authenticator } from "./auth.ts";
import type { ConfiguredSite } from "./configured.ts";
import type { Sockets } from "./sockets.ts";

/** Headers the Worker sets on an upgrade it forwards to the object: never taken from the client. */
export const FORWARDED = {
  site: "x-wanwatch-site",
  agent: "x-wanwatch-agent-id",
  clientIp: "x-wanwatch-client-ip",
  clientAsn: "x-wanwatch-client-asn",
} as const;

/** Opens an agent's channel on one uplink once its signed connect holds; refusals tell the edge's time. */
export async function acceptChannel(
  site: Result<ConfiguredSite>,
  headers: Headers,
  auth: Authenticator,
  sockets: Sockets,
  now: number,
): Promise<Response> {
  const refuse = (r: { failure: Failure }) => failureResponse(r.failure, { [HEADER_NOW]: String(now) });
  if (!site.ok) return refuse(site);
  const agentId = headers.get(FORWARDED.agent) ?? "";
  const uplink = headers.get(HEADER_UPLINK) ?? "";
  if (!site.value.config.uplinks.some((u) => u.id === uplink))
    return refuse(fail(400, "unknown_uplink", `header ${HEADER_UPLINK}: no uplink "${uplink}" in the site config`));
  const signed = {
    agent: agentId,
    ts: Number(headers.get(HEADER_TS)),
    sig: headers.get(HEADER_SIG) ?? "",
    body: connectBody(uplink),
  };
  const authenticated = await auth.authenticate(site.value, signed, now);
  if (!authenticated.ok) return refuse(authenticated);
  const { row } = authenticated.value.agent;
  if (row.uplink && row.uplink !== uplink)
    return refuse(fail(403, "wrong_uplink", `probe "${agentId}" sits behind uplink "${row.uplink}", not "${uplink}"`));
  const pair = new WebSocketPair();
  const asn = Number(headers.get(FORWARDED.clientAsn)) || null;
  sockets.acceptAgent(pair[1], {
    agent: agentId,
    uplink,
    keyId: authenticated.value.keyId,
    ip: headers.get(FORWARDED.clientIp),
    asn,
  });
  return new Response(null, { status: 101, webSocket: pair[0], headers: { [HEADER_NOW]: String(now) } });
}

/** A channel frame, checked before anything in it is believed. */
export function parseFrame(message: string | ArrayBuffer): Result<SignedFrame> {
  if (typeof message !== "string") return fail(400, "bad_frame", "frames are JSON text");
  // Refused before parsing: a frame may be up to 1 MiB, a signed heartbeat needs a fraction of it.
  if (message.length > 2 * MAX_HEARTBEAT_BYTES)
    return fail(413, "frame_too_large", `frames are at most ${2 * MAX_HEARTBEAT_BYTES} characters`);
  const json = parseJson(message, "frame");
  if (!json.ok) return json;
  const parsed = SignedFrame.safeParse(json.value);
  return parsed.success ? ok(parsed.data) : fail(400, "bad_frame", issueLines(parsed.error).join("; "));
}

/** Error frames carry no issues field (agents parse them strictly): the message names the field. */
export const frameError = (f: Failure) =>
  [f.message, ...(f.issues ?? []).map((i) => `${i.path}: ${i.message}`)].join("; ");
