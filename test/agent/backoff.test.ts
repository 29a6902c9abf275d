import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { Backoff, backoffDelay } from "#shared";

const opts = fc.record({
  baseMs: fc.integer({ min: 1, max: 10_000 }),
  maxMs: fc.integer({ min: 1, max: 600_000 }),
  factor: fc.double({ min: 1, max: 4, noNaN: true }),
  jitter: fc.double({ min: 0, max: 1, noNaN: true }),
});
const attempt = fc.integer({ min: 0, max: 10_000 });
const random = fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true });

describe("backoffDelay", () => {
  it("never exceeds the cap and never goes below the un-jittered share", () => {
    fc.assert(
      fc.property(opts, attempt, random, (o, n, r) => {
        const d = backoffDelay(n, o, () => r);
        const ceiling = Math.min(o.maxMs, o.baseMs * o.factor ** Math.min(n, 64));
        expect(d).toBeLessThanOrEqual(Math.min(o.maxMs, Math.round(ceiling)));
        expect(d).toBeGreaterThanOrEqual(Math.floor(ceiling * (1 - o.jitter)));
        expect(Number.isFinite(d)).toBe(true);
      }),
    );
  });

  it("reaches the cap and stays there", () => {
    fc.assert(
      fc.property(opts, (o) => {
        const late = backoffDelay(10_000, { ...o, factor: Math.max(1.5, o.factor), jitter: 0 }, () => 0.5);
        expect(late).toBe(o.maxMs);
      }),
    );
  });

  it("is jittered: different random draws give different delays", () => {
    const o = { baseMs: 1_000, maxMs: 30_000, jitter: 0.5 };
    expect(backoffDelay(3, o, () => 0)).toBe(8_000);
    expect(backoffDelay(3, o, () => 0.999)).toBeLessThan(4_100);
    const seen = new Set(Array.from({ length: 50 }, () => backoffDelay(3, o)));
    expect(seen.size).toBeGreaterThan(10);
  });

  it("grows monotonically without jitter", () => {
    fc.assert(
      fc.property(opts, fc.integer({ min: 0, max: 100 }), (o, n) => {
        const a = backoffDelay(n, { ...o, jitter: 0 });
        const b = backoffDelay(n + 1, { ...o, jitter: 0 });
        expect(b).toBeGreaterThanOrEqual(a);
      }),
    );
  });

  it("Backoff counts attempts and starts over after reset", () => {
    const b = new Backoff({ baseMs: 100, maxMs: 1_000, jitter: 0 });
    expect([b.next(), b.next(), b.next(), b.next(), b.next()]).toEqual([100, 200, 400, 800, 1_000]);
    b.reset();
    expect(b.next()).toBe(100);
  });
});
