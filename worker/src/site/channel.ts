// Agents' channels: the WebSocket upgrade the Worker forwards, and the frames that follow.
import {
  CLOSE_REVOKED,
  EdgeMessage,
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
import { clientAddress, familyOf, type Observed } from "../attribution.ts";
import type { Authenticator, SignedMessage } from "./auth.ts";
import type { ConfiguredSite } from "./configured.ts";
import { signedDirective } from "./directives.ts";
import type { Received } from "./intake.ts";
import type { AgentAttachment, Sockets } from "./sockets.ts";

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
  const ip = clientAddress(headers.get(FORWARDED.clientIp));
  const authenticated = await auth.authenticate(site.value, signed, familyOf(ip), now);
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
    ip,
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

/** How a frame is taken in: authenticated, folded into the site, the site run on it. */
export type Ingest = (
  site: ConfiguredSite,
  m: SignedMessage,
  seen: Observed,
  /** The uplink of the channel it came on; null over HTTP. */
  channelUplink: string | null,
) => Promise<Result<Received>>;

/** One agent frame: parsed, ingested, answered on its socket. A revoked agent's socket is closed. */
export async function answerFrame(
  ws: WebSocket,
  tag: AgentAttachment,
  message: string | ArrayBuffer,
  site: ConfiguredSite | null,
  ingest: Ingest,
  now: number,
): Promise<void> {
  const sendError = (code: string, msg: string) =>
    ws.send(JSON.stringify(EdgeMessage.parse({ type: "error", now, error: { code, message: msg } })));
  if (!site) return sendError("site_not_found", "the site has no config");
  const frame = parseFrame(message);
  if (!frame.ok) return sendError(frame.failure.code, frameError(frame.failure));
  const got = await ingest(site, { agent: tag.agent, ...frame.value }, { ip: tag.ip, asn: tag.asn }, tag.uplink);
  if (!got.ok)
    return got.failure.code === "unknown_agent"
      ? ws.close(CLOSE_REVOKED, "agent revoked")
      : sendError(got.failure.code, frameError(got.failure));
  const { agent, key, seq, agents } = got.value;
  const reply = await signedDirective(site, agent.row, key, seq, Date.now(), agents);
  try {
    ws.send(JSON.stringify(reply));
  } catch {
    // Closed while we worked (replaced, or its secret retired): nothing to answer.
  }
}
