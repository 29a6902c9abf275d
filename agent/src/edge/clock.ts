// Edge time, as the agent best knows it. Signed timestamps must be within 30 s of the edge's
// clock, and an SBC without an RTC may boot decades off: keep an offset, learned from every answer.

export class EdgeClock {
  private offsetMs = 0;
  private known = false;

  private readonly localNow: () => number;

  constructor(localNow: () => number = Date.now) {
    this.localNow = localNow;
  }

  /**
   * One observation: the edge said `edgeNow` in answer to a request sent at `sentAt` and received
   * at `receivedAt` (local ms). The edge read its clock somewhere in between: assume the middle.
   */
  observe(edgeNow: number, sentAt: number, receivedAt: number = this.localNow()): void {
    if (!Number.isFinite(edgeNow)) return;
    const mid = sentAt + Math.max(0, receivedAt - sentAt) / 2;
    this.offsetMs = Math.round(edgeNow - mid);
    this.known = true;
  }

  /** Edge time now, ms. Before any observation, the local clock. */
  now(): number {
    return this.localNow() + this.offsetMs;
  }

  get offset(): number {
    return this.offsetMs;
  }

  get synced(): boolean {
    return this.known;
  }
}
