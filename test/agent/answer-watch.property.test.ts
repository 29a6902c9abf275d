// The answer watch through a quick series of cuts, at the level of one TCP channel: each cut stalls
// both directions; when the uplink returns, each side resends what it queued at its own resend timer
// (exponential backoff, so one side often seconds before the other), in order. The edge answers
// every heartbeat when it arrives and pushes a directive when it fails over. The path itself is
// fast throughout, so every later cut must be seen at the first lost heartbeat's 300 ms bound.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { AnswerWatch, MIN_BOUND_MS } from "../../agent/src/edge/answer-watch.ts";

const HEARTBEAT_MS = 1_000;
const ONE_WAY_MS = 5;
/** The edge fails over this long after a cut (witnesses), and pushes the new directive then. */
const FAILOVER_MS = 1_300;

interface Cut {
  at: number;
  /** How long the uplink is gone. */
  lasts: number;
  /** After it returns, when each side's resend timer fires and its queue goes out. */
  upResend: number;
  downResend: number;
}

/** Arrival of a message sent at `t` in one direction: queued while cut, delivered at that side's resend. */
function arrival(t: number, cuts: readonly Cut[], resend: (c: Cut) => number): number {
  for (const c of cuts) {
    const release = c.at + c.lasts + resend(c);
    if (t + ONE_WAY_MS >= c.at && t < release) return Math.max(release, t) + ONE_WAY_MS;
  }
  return t + ONE_WAY_MS;
}

type Ev =
  | { at: number; kind: "send"; seq: number }
  | { at: number; kind: "overdue"; seq: number }
  | { at: number; kind: "answer"; seq: number | null };

/** Runs the watch through the cuts; per cut, when the channel went unanswered after it began (null: not seen). */
function run(phase: number, cuts: readonly Cut[], end: number): { seenAt: (number | null)[]; firstLost: number[] } {
  const w = new AnswerWatch();
  const events: Ev[] = [];
  for (let t = phase, seq = 1; t < end; t += HEARTBEAT_MS, seq++) events.push({ at: t, kind: "send", seq });
  const down = (t: number) => arrival(t, cuts, (c) => c.downResend);
  const up = (t: number) => arrival(t, cuts, (c) => c.upResend);
  for (const c of cuts) events.push({ at: down(c.at + FAILOVER_MS), kind: "answer", seq: null });
  const wentUnanswered: number[] = [];
  while (events.length) {
    // Stable: among events at the same moment, the one queued first happens first.
    const i = events.reduce((best, e, k) => (e.at < events[best]!.at ? k : best), 0);
    const e = events.splice(i, 1)[0]!;
    if (e.kind === "send") {
      w.sent(e.seq, e.at, e.at);
      events.push({ at: e.at + w.boundMs(e.at), kind: "overdue", seq: e.seq });
      events.push({ at: down(up(e.at)), kind: "answer", seq: e.seq });
    } else if (e.kind === "overdue") {
      if (w.overdue(e.seq)) wentUnanswered.push(e.at);
    } else w.answered(e.seq, e.at);
  }
  // The first heartbeat whose answer the cut meets.
  const firstLost = cuts.map((c) => phase + Math.ceil((c.at - 2 * ONE_WAY_MS - phase) / HEARTBEAT_MS) * HEARTBEAT_MS);
  return {
    firstLost,
    seenAt: cuts.map((c, k) => wentUnanswered.find((t) => t >= c.at && t <= firstLost[k]! + 3_000) ?? null),
  };
}

const cutsArb = fc
  .array(
    fc.record({
      // ≈ 12 s apart, as bench:tunnels cuts; the uplink is gone for the failover and some more.
      gap: fc.integer({ min: 9_000, max: 16_000 }),
      lasts: fc.integer({ min: 2_500, max: 5_000 }),
      // Linux resends after 0.2, 0.6, 1.4, 3.0 s…: the next resend after the return is up to ~3 s away.
      upResend: fc.integer({ min: 0, max: 3_200 }),
      downResend: fc.integer({ min: 0, max: 3_200 }),
    }),
    { minLength: 2, maxLength: 6 },
  )
  .map((xs) => {
    let at = 5_000;
    return xs.map(({ gap, ...c }) => {
      const cut = { at, ...c };
      at += Math.max(gap, c.lasts + Math.max(c.upResend, c.downResend) + 3_000);
      return cut;
    });
  });

describe("answer watch, a quick series of cuts", () => {
  it("sees every cut at its first lost heartbeat's 300 ms bound, however each side's queue comes back", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: HEARTBEAT_MS - 1 }), cutsArb, (phase, cuts) => {
        const last = cuts.at(-1)!;
        const { seenAt, firstLost } = run(phase, cuts, last.at + last.lasts + 10_000);
        expect(seenAt).toEqual(firstLost.map((t) => t + MIN_BOUND_MS));
      }),
      { numRuns: 400 },
    );
  });

  it("the case bench:tunnels hit: the edge's push gets through first, one heartbeat waits behind the agent's queue", () => {
    const cuts: Cut[] = [
      { at: 5_050, lasts: 3_000, upResend: 1_500, downResend: 100 },
      { at: 17_050, lasts: 3_000, upResend: 0, downResend: 0 },
    ];
    const { seenAt, firstLost } = run(0, cuts, 30_000);
    expect(seenAt).toEqual(firstLost.map((t) => t + MIN_BOUND_MS));
  });
});
