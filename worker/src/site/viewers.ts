// Open status pages: a snapshot when one opens, then what was recorded since, and the state at
// most once a second otherwise.
import type { LiveMessage, SiteStatus } from "#shared";
import { AVAILABILITY_WINDOW_MS, availability } from "../availability.ts";
import { failureResponse } from "../failure.ts";
import type { SiteStore } from "../store.ts";
import { broadcast, type Sockets } from "./sockets.ts";

export const MAX_VIEWERS = 100;
/** Status pages get state at most this often when nothing was recorded (changes go at once). */
const VIEWER_PUSH_MS = 1_000;
/** Events a status page starts with. */
const SNAPSHOT_EVENTS = 50;

export class ViewersHub {
  /** Newest event the pages have been sent, and when they were last sent anything. */
  private seq = 0;
  private pushedAt = 0;
  /** When each page last asked for a refresh. */
  private readonly refreshedAt = new WeakMap<WebSocket, number>();

  constructor(
    private readonly sockets: Sockets,
    private readonly store: SiteStore,
  ) {}

  /** After the store's newest event is known. */
  load(): void {
    this.seq = this.store.newestSeq;
  }

  accept(status: SiteStatus, now: number): Response {
    if (this.sockets.viewers().length >= MAX_VIEWERS)
      return failureResponse({
        status: 429,
        code: "too_many_viewers",
        message: `at most ${MAX_VIEWERS} live status pages per site`,
      });
    const { 0: client, 1: server } = new WebSocketPair();
    this.sockets.acceptViewer(server);
    const start = Math.max(now - AVAILABILITY_WINDOW_MS, this.store.firstEventAt() ?? now);
    const uptime = availability(status.uplinks, this.store.uplinkChanges(start), start, now);
    server.send(
      JSON.stringify({
        type: "snapshot",
        status,
        events: this.store.events(SNAPSHOT_EVENTS),
        availability: uptime,
      } satisfies LiveMessage),
    );
    return new Response(null, { status: 101, webSocket: client });
  }

  /** Sends the pages what was recorded since they last heard, and the state at most once a second otherwise. */
  push(now: number, status: () => SiteStatus): void {
    const sockets = this.sockets.viewers();
    if (!sockets.length) {
      this.seq = this.store.newestSeq;
      return;
    }
    const fresh = this.store.newestSeq > this.seq;
    if (!fresh && now - this.pushedAt < VIEWER_PUSH_MS) return;
    const events = fresh ? this.store.eventsAfter(this.seq) : [];
    this.seq = this.store.newestSeq;
    this.pushedAt = now;
    broadcast(sockets, JSON.stringify({ type: "update", status: status(), events } satisfies LiveMessage));
  }

  /**
   * A page back from the background asks for the state (at most once a second: anyone may be a
   * viewer); the strip it extends itself.
   */
  refresh(ws: WebSocket, message: string | ArrayBuffer, now: number, status: (() => SiteStatus) | null): void {
    if (message !== "refresh" || !status || now - (this.refreshedAt.get(ws) ?? -Infinity) < VIEWER_PUSH_MS) return;
    this.refreshedAt.set(ws, now);
    ws.send(JSON.stringify({ type: "update", status: status(), events: [] } satisfies LiveMessage));
  }
}
