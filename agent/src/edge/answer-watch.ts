// Whether one channel's heartbeats are being answered: a heartbeat with no answer within
// max(300 ms, 3 × the slowest answer of the last minute) is unanswered, until any answer comes.
// The slowest answer, not the last: a lossy or slow path that has been late before is late again,
// not cut, so it must not be reported as cut (TCP resends one lost segment after ≥ 200 ms).
// But only answers that measure the path: one that came after a later heartbeat had also passed its
// bound, or to a heartbeat sent while the channel was unanswered or while an earlier heartbeat past
// its bound still waited, measures an outage (queued heartbeats answered when it ends); counted, it
// would keep the bound above downAfterMs for a minute after every outage, and no cut in that minute
// could be witnessed. The last case is TCP after an outage: each side resends its queue at its own
// timer, so the edge's push (or a late answer) can end "unanswered" while our heartbeats still wait.

export const MIN_BOUND_MS = 300;
const RTT_WINDOW_MS = 60_000;
/** Heartbeats kept waiting for an answer: a few intervals' worth. */
const MAX_PENDING = 16;

export interface Unanswered {
  /** Local time the first unanswered heartbeat was sent. */
  sentAt: number;
  /** The same moment in edge time: what a witness report says. */
  edgeAt: number;
}

interface Pending extends Unanswered {
  /** Sent while the channel was unanswered, or behind a heartbeat past its bound: its answer times the outage, not the path. */
  inOutage: boolean;
  /** Judged past its bound unanswered. */
  stalled: boolean;
}

export class AnswerWatch {
  private readonly pending = new Map<number, Pending>();
  private rtts: { at: number; ms: number }[] = [];
  private first: Unanswered | null = null;
  /** Local send time of the latest heartbeat judged past its bound unanswered. */
  private stalledAt = Number.NEGATIVE_INFINITY;
  /** Local time of the latest answer. */
  lastAnswerAt: number | null = null;

  get unanswered(): Unanswered | null {
    return this.first;
  }

  /** How long a heartbeat sent now may wait for its answer. */
  boundMs(now: number): number {
    this.rtts = this.rtts.filter((r) => now - r.at <= RTT_WINDOW_MS);
    return Math.max(MIN_BOUND_MS, 3 * Math.max(0, ...this.rtts.map((r) => r.ms)));
  }

  sent(seq: number, at: number, edgeAt: number): void {
    const behind = this.first !== null || [...this.pending.values()].some((p) => p.stalled);
    this.pending.set(seq, { sentAt: at, edgeAt, inOutage: behind, stalled: false });
    if (this.pending.size > MAX_PENDING) this.pending.delete(this.pending.keys().next().value!);
  }

  /** An answer (to `seq`, or pushed unasked: null): the channel answers again. */
  answered(seq: number | null, at: number): void {
    const sent = seq === null ? undefined : this.pending.get(seq);
    if (sent && !sent.inOutage && sent.sentAt >= this.stalledAt) this.rtts.push({ at, ms: at - sent.sentAt });
    // Older heartbeats will not be answered any more (an answer is in order): forget them too.
    if (seq !== null) for (const s of this.pending.keys()) if (s <= seq) this.pending.delete(s);
    this.lastAnswerAt = at;
    this.first = null;
  }

  /** Judges heartbeat `seq` at its bound; true when the channel has just become unanswered. */
  overdue(seq: number): boolean {
    const sent = this.pending.get(seq);
    if (!sent || (this.lastAnswerAt !== null && this.lastAnswerAt >= sent.sentAt)) return false;
    sent.stalled = true;
    this.stalledAt = Math.max(this.stalledAt, sent.sentAt);
    if (this.first !== null) return false;
    this.first = { sentAt: sent.sentAt, edgeAt: sent.edgeAt };
    return true;
  }
}
