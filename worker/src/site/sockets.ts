// The object's WebSockets: agents' channels (tagged by agent, and by agent, uplink and family) and status
// pages. What a socket carries through hibernation is validated on every read, never cast.
import { z } from "zod";
import { CLOSE_REPLACED } from "#shared";
import { familyOf } from "../attribution.ts";

/** Per-socket facts of an agent's channel that must survive hibernation. */
export const AgentAttachment = z.object({
  agent: z.string(),
  uplink: z.string(),
  /** Which of the agent's keys opened it (see keyId): pushes are signed with it; closed when it retires. */
  keyId: z.string(),
  ip: z.string().nullable(),
  asn: z.number().nullable(),
});
export type AgentAttachment = z.infer<typeof AgentAttachment>;

const ViewerAttachment = z.object({ viewer: z.literal(true) });

const Attachment = z.union([ViewerAttachment, AgentAttachment]);
export type Attachment = z.infer<typeof Attachment>;

/** Socket tag of status pages; "#" keeps it apart from every agent id. */
const VIEWER_TAG = "#viewer";

/**
 * One channel per agent, uplink and family: an agent heartbeats through each uplink over IPv4 and,
 * where it has IPv6, over IPv6 as well. The IPv4 key is the one sockets had before IPv6 channels.
 */
export const channelKey = (tag: Pick<AgentAttachment, "agent" | "uplink" | "ip">): string =>
  `${tag.agent}/${tag.uplink}${familyOf(tag.ip) === 6 ? "/6" : ""}`;

/** What the socket carries, or null for one this code never tagged. */
export function attachmentOf(ws: WebSocket): Attachment | null {
  const parsed = Attachment.safeParse(ws.deserializeAttachment());
  return parsed.success ? parsed.data : null;
}

/**
 * Closes without throwing. 1005, 1006 and 1015 are reserved for reporting a close and may not be
 * sent: a peer gone that way is closed with no code.
 */
export function closeQuietly(ws: WebSocket, code?: number, reason?: string): void {
  try {
    if (code === undefined || code === 1005 || code === 1006 || code === 1015) ws.close();
    else ws.close(code, reason);
  } catch {
    // Already closed: nothing to do.
  }
}

/** Sends to each socket; one closing under us is skipped (it gets a fresh start when it reconnects). */
export function broadcast(sockets: readonly WebSocket[], frame: string): void {
  for (const ws of sockets) {
    try {
      ws.send(frame);
    } catch {
      // Closing: nothing to deliver.
    }
  }
}

export class Sockets {
  constructor(private readonly ctx: DurableObjectState) {}

  /** A reconnect replaces the old socket of its uplink and family, never the other family's. */
  acceptAgent(ws: WebSocket, tag: AgentAttachment): void {
    const key = channelKey(tag);
    for (const old of this.ctx.getWebSockets(key)) old.close(CLOSE_REPLACED, "replaced by a new connection");
    this.ctx.acceptWebSocket(ws, [tag.agent, key]);
    ws.serializeAttachment(tag);
  }

  /** The agent's open channels, with what each carries. */
  ofAgent(agentId: string): { ws: WebSocket; tag: AgentAttachment | null }[] {
    return this.ctx.getWebSockets(agentId).map((ws) => {
      const tag = attachmentOf(ws);
      return { ws, tag: tag && !("viewer" in tag) ? tag : null };
    });
  }

  closeAgent(agentId: string, code: number, reason: string): void {
    for (const ws of this.ctx.getWebSockets(agentId)) ws.close(code, reason);
  }

  acceptViewer(ws: WebSocket): void {
    this.ctx.acceptWebSocket(ws, [VIEWER_TAG]);
    ws.serializeAttachment({ viewer: true } satisfies z.infer<typeof ViewerAttachment>);
  }

  viewers(): WebSocket[] {
    return this.ctx.getWebSockets(VIEWER_TAG);
  }
}
