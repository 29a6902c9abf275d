// A server agent as a witness (SWIM-style indirect evidence): when its heartbeats through one uplink
// go unanswered while another uplink's channel still answers, it says so through that one at once,
// again once the report has stood WITNESS_CONFIRM_MS (when the edge can judge it), and with every
// heartbeat after, until the silent uplink answers again. The edge decides; this only reports.
import { WITNESS_CONFIRM_MS, type Unanswered } from "#shared";
import type { AnswerWatch } from "../edge/answer-watch.ts";

export interface Witnessed {
  uplink: string;
  answers: AnswerWatch;
  beatNow: () => void;
}

export class Witness {
  private readonly timers = new Set<NodeJS.Timeout>();
  private readonly channels: readonly Witnessed[];

  constructor(channels: readonly Witnessed[]) {
    this.channels = channels;
  }

  /**
   * What a heartbeat through `via` reports: every other uplink unanswered since before `via` last
   * answered (a busy edge delays both alike, and so reports nothing).
   */
  reportFor(via: string): Unanswered[] {
    const through = this.channels.find((c) => c.uplink === via);
    const answeredAt = through?.answers.lastAnswerAt ?? null;
    if (!through || through.answers.unanswered || answeredAt === null) return [];
    return this.channels.flatMap((c) => {
      const u = c.answers.unanswered;
      return c.uplink !== via && u && u.sentAt < answeredAt ? [{ uplink: c.uplink, since: Math.round(u.edgeAt) }] : [];
    });
  }

  /** `uplink` has just gone unanswered: report it now through every channel that can, and once more when it has stood. */
  unanswered(uplink: string): void {
    this.report(uplink);
    const t = setTimeout(() => {
      this.timers.delete(t);
      this.report(uplink);
    }, WITNESS_CONFIRM_MS);
    t.unref();
    this.timers.add(t);
  }

  stop(): void {
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
  }

  /** Through every channel whose heartbeat would report `uplink` now (none once it answers again). */
  private report(uplink: string): void {
    for (const c of this.channels)
      if (c.uplink !== uplink && this.reportFor(c.uplink).some((r) => r.uplink === uplink)) c.beatNow();
  }
}
