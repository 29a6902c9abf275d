import { afterEach, describe, expect, it, vi } from "vitest";
import { AnswerWatch } from "../../agent/src/edge/answer-watch.ts";
import { Witness } from "../../agent/src/daemon/witness.ts";

/** Edge time runs 5 s ahead of the agent's clock here: reports carry edge time. */
const EDGE = 5_000;

function watch(): AnswerWatch {
  return new AnswerWatch();
}

describe("answer watch", () => {
  it("a heartbeat unanswered at its bound makes the channel unanswered, once, until any answer", () => {
    const w = watch();
    w.answered(null, 500);
    w.sent(1, 1_000, 1_000 + EDGE);
    expect(w.overdue(1)).toBe(true);
    expect(w.unanswered).toEqual({ sentAt: 1_000, edgeAt: 1_000 + EDGE });
    w.sent(2, 2_000, 2_000 + EDGE);
    expect(w.overdue(2)).toBe(false);
    expect(w.unanswered?.sentAt).toBe(1_000);
    w.answered(2, 2_400);
    expect(w.unanswered).toBeNull();
    expect(w.lastAnswerAt).toBe(2_400);
  });

  it("an answer after the heartbeat left, to any heartbeat or pushed, means it is not unanswered", () => {
    const pushed = watch();
    pushed.sent(1, 1_000, 1_000);
    pushed.answered(null, 1_100);
    expect(pushed.overdue(1)).toBe(false);
    const w = watch();
    w.sent(1, 1_000, 1_000);
    w.sent(2, 1_100, 1_100);
    w.answered(2, 1_150);
    expect(w.overdue(1)).toBe(false);
    expect(w.unanswered).toBeNull();
  });

  it("waits max(300 ms, 3 × the slowest answer of the last minute)", () => {
    const w = watch();
    expect(w.boundMs(0)).toBe(300);
    w.sent(1, 1_000, 1_000);
    w.answered(1, 1_050);
    expect(w.boundMs(1_100)).toBe(300);
    w.sent(2, 2_000, 2_000);
    w.answered(2, 2_605);
    w.sent(3, 3_000, 3_000);
    w.answered(3, 3_010);
    expect(w.boundMs(3_100)).toBe(1_815);
    expect(w.boundMs(2_605 + 60_001)).toBe(300);
  });

  it("an outage's answers, queued until it ends, do not widen the bound; a slow path's still do", () => {
    const w = watch();
    w.sent(1, 1_000, 1_000);
    expect(w.overdue(1)).toBe(true);
    w.sent(2, 2_000, 2_000);
    w.overdue(2);
    w.sent(3, 3_000, 3_000);
    w.overdue(3);
    w.sent(4, 4_000, 4_000);
    for (const seq of [1, 2, 3, 4]) w.answered(seq, 4_900);
    expect(w.boundMs(5_000)).toBe(300);
    w.sent(5, 6_000, 6_000);
    expect(w.overdue(5)).toBe(true);
    w.answered(5, 6_700);
    expect(w.boundMs(6_800)).toBe(2_100);
  });
});

interface FakeChannel {
  uplink: string;
  answers: AnswerWatch;
  beatNow: () => void;
}

const channel = (uplink: string): FakeChannel => ({ uplink, answers: watch(), beatNow: vi.fn() });

describe("witness", () => {
  afterEach(() => vi.useRealTimers());

  it("reports an uplink unanswered through one that answered after it, with the edge time of the first unanswered beat", () => {
    const [a, b] = [channel("isp1"), channel("isp2")];
    const w = new Witness([a, b]);
    a.answers.sent(1, 1_000, 1_000 + EDGE);
    b.answers.sent(1, 1_001, 1_001 + EDGE);
    b.answers.answered(1, 1_010);
    a.answers.overdue(1);
    expect(w.reportFor("isp2")).toEqual([{ uplink: "isp1", since: 1_000 + EDGE }]);
    expect(w.reportFor("isp1")).toEqual([]);
  });

  it("reports nothing when the other uplink has not answered since (a busy edge), or is unanswered itself", () => {
    const [a, b] = [channel("isp1"), channel("isp2")];
    const w = new Witness([a, b]);
    b.answers.answered(null, 900);
    a.answers.sent(1, 1_000, 1_000);
    a.answers.overdue(1);
    expect(w.reportFor("isp2")).toEqual([]);
    b.answers.answered(null, 1_200);
    b.answers.sent(2, 2_000, 2_000);
    b.answers.overdue(2);
    expect(w.reportFor("isp2")).toEqual([]);
  });

  it("reports at once through the uplink that answers, and once more WITNESS_CONFIRM_MS later if still unanswered", () => {
    vi.useFakeTimers();
    const [a, b] = [channel("isp1"), channel("isp2")];
    const w = new Witness([a, b]);
    a.answers.sent(1, 1_000, 1_000);
    b.answers.answered(null, 1_010);
    a.answers.overdue(1);
    w.unanswered("isp1");
    expect(b.beatNow).toHaveBeenCalledTimes(1);
    expect(a.beatNow).not.toHaveBeenCalled();
    vi.advanceTimersByTime(200);
    expect(b.beatNow).toHaveBeenCalledTimes(2);

    a.answers.answered(null, 1_500);
    a.answers.sent(2, 2_000, 2_000);
    b.answers.answered(null, 2_010);
    a.answers.overdue(2);
    w.unanswered("isp1");
    expect(b.beatNow).toHaveBeenCalledTimes(3);
    a.answers.answered(2, 2_150);
    vi.advanceTimersByTime(200);
    expect(b.beatNow).toHaveBeenCalledTimes(3);
    w.stop();
  });
});
