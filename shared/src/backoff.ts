// Retry delays, for the agent's reconnects and applies and the edge's notification sends:
// exponential, capped, and jittered so a fleet that lost the edge together does not come back in
// lockstep. Pure: the random source is injected.

export interface BackoffOptions {
  /** Delay before the first retry, ms. */
  baseMs: number;
  /** No delay exceeds this, ms. */
  maxMs: number;
  /** Growth per attempt. */
  factor?: number;
  /** Fraction of the delay that is random (0 = none, 1 = "full jitter"). */
  jitter?: number;
}

/**
 * Delay before retry number `attempt` (0-based): `min(maxMs, baseMs·factor^attempt)`, of which the
 * `jitter` fraction is drawn at random. Always within `[(1 − jitter)·d, d]`, so never above maxMs.
 */
export function backoffDelay(attempt: number, opts: BackoffOptions, random: () => number = Math.random): number {
  const factor = opts.factor ?? 2;
  const jitter = Math.min(1, Math.max(0, opts.jitter ?? 0.5));
  // Clamp the exponent: past the cap the product only risks overflowing to Infinity.
  const exp = Math.min(Math.max(0, Math.floor(attempt)), 64);
  const ceiling = Math.min(opts.maxMs, opts.baseMs * factor ** exp);
  const r = Math.min(1, Math.max(0, random()));
  return Math.round(ceiling * (1 - jitter * r));
}

/** A retry counter with its schedule: `next()` gives the next delay, `reset()` after a success. */
export class Backoff {
  private attempt = 0;
  private readonly opts: BackoffOptions;
  private readonly random: () => number;

  constructor(opts: BackoffOptions, random: () => number = Math.random) {
    this.opts = opts;
    this.random = random;
  }

  next(): number {
    return backoffDelay(this.attempt++, this.opts, this.random);
  }

  reset(): void {
    this.attempt = 0;
  }

  get attempts(): number {
    return this.attempt;
  }
}
