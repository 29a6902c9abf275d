// The adapter around the reconciler: performs its effects (switch routes, restart tunnels, write
// the state file, wake up for retries) and feeds the results back in.
import type { Directive } from "#shared";
import { describeError } from "../lib/errors.ts";
import type { Logger } from "../lib/log.ts";
import {
  initialState,
  step,
  type Effect,
  type ReconcilerEvent,
  type ReconcilerState,
  type RoutedUplinks,
} from "./reconciler.ts";

/** What the host module provides (agent/src/host): the route switcher and the tunnel restarter. */
// The signal aborts at shutdown: each step is safe to stop between (the next start resumes).
export interface Switcher {
  routed(): Promise<RoutedUplinks>;
  /**
   * Moves the routes and verifies them; `persist`, when there is one, then stores the choice in the
   * host's own network configuration (NetworkManager's profiles) and counts as part of applying.
   */
  apply(
    uplinkId: string,
    edgeAddress: string,
    signal: AbortSignal,
  ): Promise<{ changed: boolean; persist?: () => Promise<void> }>;
}
export interface TunnelRestarter {
  restart(signal: AbortSignal): Promise<void>;
}

export interface ApplierOptions {
  switcher: Switcher;
  tunnels: TunnelRestarter;
  /** The edge's address, for the switcher's verification (`ip route get` to it). */
  edgeAddress: () => Promise<string>;
  save: (s: ReconcilerState) => void;
  log: Logger;
  retryDelay: (attempt: number) => number;
  /** The routes had drifted from the directive and are back: for the next heartbeat and the status. */
  onDriftRepaired?: (d: Extract<Effect, { kind: "drift-repaired" }>) => void;
  now?: () => number;
  initial?: ReconcilerState;
}

export class DirectiveApplier {
  private s: ReconcilerState;
  private wakeTimer: NodeJS.Timeout | null = null;
  private wakeAt: number | null = null;
  private running: Promise<void> | null = null;
  private stopped = false;
  private readonly abort = new AbortController();
  private readonly now: () => number;
  /** When the last operation ended: route reads begun before then are out of date. */
  private settledAt = 0;
  /** Resolves whenever the state changes; tests and `stop()` wait on it. */
  private changed: (() => void)[] = [];

  private readonly o: ApplierOptions;

  constructor(o: ApplierOptions) {
    this.o = o;
    this.s = o.initial ?? initialState();
    this.now = o.now ?? Date.now;
  }

  get state(): ReconcilerState {
    return this.s;
  }

  /** Resume whatever the saved state leaves undone (after a restart). */
  start(): void {
    this.dispatch({ kind: "tick" });
  }

  offer(directive: Directive): void {
    this.dispatch({ kind: "directive", directive });
  }

  /**
   * What the host's default route led to when a read began at `readAt`: a drift from the applied
   * directive is re-applied. A read begun before the last operation ended may show the routes
   * that operation replaced: it is ignored, not taken for a drift.
   */
  observeRoutes(routed: RoutedUplinks, readAt: number): void {
    if (readAt < this.settledAt) return;
    this.dispatch({ kind: "routes", routed });
  }

  /**
   * Stops starting work; gives an operation in flight `graceMs` to finish, then cancels it (its
   * command gets SIGTERM, then SIGKILL) and waits for that. False when it had to cancel.
   */
  async stop(graceMs: number): Promise<boolean> {
    this.stopped = true;
    if (this.wakeTimer) clearTimeout(this.wakeTimer);
    const running = this.running;
    if (!running) return true;
    let timer: NodeJS.Timeout | undefined;
    const finished = await Promise.race([
      running.then(() => true),
      new Promise<boolean>((r) => (timer = setTimeout(() => r(false), graceMs))),
    ]);
    clearTimeout(timer);
    if (finished) return true;
    this.abort.abort(new Error("the agent is stopping"));
    await running;
    return false;
  }

  private dispatch(event: ReconcilerEvent): void {
    if (this.stopped && (event.kind === "tick" || event.kind === "directive" || event.kind === "routes")) {
      // Record a directive that arrives while stopping (persisted by the next start), start nothing.
      if (event.kind === "directive")
        this.s = {
          ...this.s,
          directive:
            event.directive.generation >= (this.s.directive?.generation ?? -1) ? event.directive : this.s.directive,
        };
      return;
    }
    const r = step(this.s, event, this.now(), { retryDelay: this.o.retryDelay });
    this.s = r.state;
    for (const e of r.effects) this.perform(e);
    for (const w of this.changed.splice(0)) w();
  }

  private perform(e: Effect): void {
    if (this.stopped && (e.kind === "apply" || e.kind === "restart-tunnels" || e.kind === "wake")) {
      // Stopping: leave it for the next start, which resumes from the state file.
      this.s = { ...this.s, busy: null };
      return;
    }
    switch (e.kind) {
      case "log":
        this.o.log[e.level](e.msg, e.fields);
        return;
      case "persist":
        try {
          this.o.save(this.s);
        } catch (err) {
          this.o.log.error("cannot write the state file", { error: describeError(err) });
        }
        return;
      case "wake":
        this.wake(e.at);
        return;
      case "drift-repaired":
        this.o.onDriftRepaired?.(e);
        return;
      case "apply":
        this.o.log.info("applying directive", { generation: e.generation, activeUplink: e.activeUplink });
        this.run(
          async () => {
            const edge = await this.o.edgeAddress();
            const r = await this.o.switcher.apply(e.activeUplink, edge, this.abort.signal);
            this.o.log.info(r.changed ? "routes switched" : "routes already right", {
              generation: e.generation,
              activeUplink: e.activeUplink,
            });
            await r.persist?.();
          },
          () => ({ kind: "applied", generation: e.generation }),
          (error) => ({ kind: "apply-failed", generation: e.generation, error }),
        );
        return;
      case "restart-tunnels":
        this.o.log.info("restarting tunnels", { generation: e.generation });
        this.run(
          () => this.o.tunnels.restart(this.abort.signal),
          () => ({ kind: "tunnels-restarted", generation: e.generation }),
          (error) => ({ kind: "tunnels-failed", generation: e.generation, error }),
        );
        return;
    }
  }

  private run(op: () => Promise<void>, done: () => ReconcilerEvent, failed: (error: string) => ReconcilerEvent): void {
    const p = (async () => {
      let event: ReconcilerEvent;
      try {
        await op();
        event = done();
      } catch (err) {
        event = failed(describeError(err).slice(0, 500));
      }
      this.running = null;
      this.settledAt = this.now();
      if (this.abort.signal.aborted) {
        // Cancelled by stop(): not a failure to report; the saved state has it still to do.
        this.s = { ...this.s, busy: null };
        return;
      }
      this.dispatch(event);
    })();
    this.running = p;
  }

  private wake(at: number): void {
    if (this.wakeAt !== null && this.wakeAt <= at && this.wakeTimer) return;
    if (this.wakeTimer) clearTimeout(this.wakeTimer);
    this.wakeAt = at;
    this.wakeTimer = setTimeout(
      () => {
        this.wakeTimer = null;
        this.wakeAt = null;
        this.dispatch({ kind: "tick" });
        // Timers may fire a little early: sleep again until the retry is due.
        if (!this.stopped && this.s.retryAt !== null && !this.s.busy) this.wake(this.s.retryAt);
      },
      Math.max(0, at - this.now()),
    );
  }

  /** Resolves at the next state change (for tests). */
  nextChange(): Promise<void> {
    return new Promise((r) => this.changed.push(r));
  }
}
