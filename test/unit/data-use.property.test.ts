import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  MB,
  THRESHOLDS,
  counterDelta,
  periodEnd,
  periodStart,
  record,
  type Crossing,
  type DataUseState,
} from "../../worker/src/engine/data-use.ts";

const DAY = 86_400_000;
const T0 = Date.UTC(2026, 10, 20, 13, 0);

/** The oracle's period: shifted back `resetDay − 1` days, a time falls in its period's calendar month. */
const periodKey = (t: number, resetDay: number) => {
  const d = new Date(t - (resetDay - 1) * DAY);
  return `${d.getUTCFullYear()}-${d.getUTCMonth()}`;
};

/** One report of one host: traffic before a reboot (if any), the reboot, traffic after it, then the report. */
const step = fc.record({
  host: fc.integer({ min: 0, max: 2 }),
  gapMs: fc.integer({ min: 1, max: 9 * DAY }),
  pre: fc.integer({ min: 0, max: 20 * MB }),
  reboot: fc.boolean(),
  post: fc.integer({ min: 0, max: 20 * MB }),
});

const scenario = fc.record({
  resetDay: fc.integer({ min: 1, max: 28 }),
  capMB: fc.integer({ min: 1, max: 400 }),
  // A host's counters: 32-bit ones (some drivers on 32-bit kernels) wrap, 64-bit ones do not here.
  // Some start close to the top of 32 bits, so that they wrap within a scenario.
  hosts: fc.array(
    fc.record({
      bits32: fc.boolean(),
      start: fc.oneof(
        fc.integer({ min: 0, max: 2 ** 32 - 1 }),
        fc.integer({ min: 2 ** 32 - 200 * MB, max: 2 ** 32 - 1 }),
      ),
    }),
    { minLength: 3, maxLength: 3 },
  ),
  steps: fc.array(step, { maxLength: 60 }),
});

describe("data use: month-to-date bytes of a metered uplink from its hosts' counters", () => {
  it("counts what the hosts moved since each one's first report, per period, across reboots and wraps; each threshold once a period", () => {
    fc.assert(
      fc.property(scenario, ({ resetDay, capMB, hosts, steps }) => {
        const plan = { capMB, resetDay };
        const metered = [{ uplink: "lte", plan }];
        const live = hosts.map((h, i) => ({ ...h, boot: 0, rx: h.start, id: `h${i}`, reported: false }));
        let state: DataUseState = { uplinks: {}, counters: {} };
        let now = T0;
        const truth = new Map<string, number>();
        const crossings: (Crossing & { at: number })[] = [];
        const expectedCrossings: string[] = [];
        for (const s of steps) {
          now += s.gapMs;
          const h = live[s.host]!;
          const wrap = (x: number) => (h.bits32 ? x % 2 ** 32 : x);
          // The oracle counts what it knows moved: the first report is only a baseline, and what moved
          // before a reboot since the last report is lost with the counter.
          const counted = !h.reported ? 0 : s.reboot ? s.post : s.pre + s.post;
          h.rx = wrap(h.rx + s.pre);
          if (s.reboot) [h.boot, h.rx] = [h.boot + 1, 0];
          h.rx = wrap(h.rx + s.post);
          h.reported = true;
          const key = periodKey(now, resetDay);
          const before = truth.get(key) ?? 0;
          truth.set(key, before + counted);
          for (const t of THRESHOLDS)
            if (before * 100 < t * capMB * MB && (before + counted) * 100 >= t * capMB * MB)
              expectedCrossings.push(`${key}:${t}`);
          const r = record(state, h.id, [{ uplink: "lte", counter: `boot${h.boot}:2`, rx: h.rx, tx: 0 }], metered, now);
          state = r.state;
          crossings.push(...r.crossings.map((c) => ({ ...c, at: now })));
          expect(state.uplinks.lte?.bytes ?? 0).toBe(truth.get(key));
          expect(periodKey(state.uplinks.lte?.periodStart ?? now, resetDay)).toBe(key);
        }
        expect(crossings.map((c) => `${periodKey(c.at, resetDay)}:${c.percent}`)).toEqual(expectedCrossings);
      }),
      { numRuns: 300 },
    );
  });

  it("ignores reports for uplinks that are not metered", () => {
    const r = record(
      { uplinks: {}, counters: {} },
      "srv1",
      [{ uplink: "fiber", counter: "b:1", rx: 5, tx: 5 }],
      [{ uplink: "lte", plan: null }],
      T0,
    );
    expect(r.state).toEqual({ uplinks: {}, counters: {} });
  });

  it("a period starts on resetDay at 00:00 UTC and ends on the next month's", () => {
    expect(periodStart(Date.UTC(2027, 0, 3, 12), 5)).toBe(Date.UTC(2026, 11, 5));
    expect(periodStart(Date.UTC(2027, 0, 5), 5)).toBe(Date.UTC(2027, 0, 5));
    expect(periodEnd(Date.UTC(2027, 0, 28), 28)).toBe(Date.UTC(2027, 1, 28));
    expect(periodEnd(Date.UTC(2026, 11, 1), 1)).toBe(Date.UTC(2027, 0, 1));
  });

  it("a counter that falls is a 32-bit wrap from its upper half, otherwise counting started again", () => {
    const at = (rx: number, counter = "b:1") => ({ counter, rx, tx: 0 });
    expect(counterDelta(undefined, at(1_000))).toBe(0);
    expect(counterDelta(at(1_000), at(1_500))).toBe(500);
    expect(counterDelta(at(2 ** 32 - 100), at(50))).toBe(150);
    expect(counterDelta(at(9_000), at(50))).toBe(50);
    expect(counterDelta(at(9_000), at(50, "b:7"))).toBe(50);
    expect(counterDelta(at(100), at(9_000, "b2:1"))).toBe(9_000);
  });
});
