// Whether one channel's heartbeats are being answered: a heartbeat with no answer within
// max(300 ms, 3 × the slowest answer of the last minute) is unanswered, until any answer comes.
// The slowest answer, not the last: a lossy or slow path that has been late before is late again,
// not cut, so it must not be reported as cut (TCP resends one lost segment after ≥ 200 ms, then
// after 0.6 s, 1.4 s…: on a 35 % lossy path answers a second or two late are common, and each one
// widens the bound). But only answers that measure the path, not an outage (queued heartbeats
// answered when it ends): counted, those would keep the bound above downAfterMs for a minute
// after every outage, and no cut in that minute could be witnessed. An answer times an outage when
// its heartbeat was sent while the channel was unanswered or behind one past its bound (TCP after
// an outage: each side resends its queue at its own timer, so the edge's push can end
// "unanswered" while our heartbeats still wait), or when it took longer than a heartbeat interval
// (the first heartbeat an outage meets waits out most of it: of a cut longer than two intervals,
// more than one). One or two TCP resends (0.2 s, 0.6 s) still widen the bound, on the safe side.

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
  /** An answer later than this timed an outage: the channel's heartbeat interval. */
  outageMs = 1_000;
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
    if (sent && !sent.inOutage && at - sent.sentAt <= this.outageMs) this.rtts.push({ at, ms: at - sent.sentAt });
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
    if (this.first !== null) return false;
    this.first = { sentAt: sent.sentAt, edgeAt: sent.edgeAt };
    return true;
  }
}
