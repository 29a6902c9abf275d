// The adapter around replicas.ts: restarts a pinned replica when its uplink comes back, logs why
// and how it went, and feeds the outcome back in. Retries ride on the next answers from the edge
// through that uplink (one per heartbeat), so no timer is needed.
import { describeError } from "../lib/errors.ts";
import type { Logger } from "../lib/log.ts";
import type { ReplicaView } from "../state/files.ts";
import type { TunnelRestarter } from "./applier.ts";
import { initialReplicas, stepReplicas, type ReplicaEvent, type ReplicasState } from "./replicas.ts";

export interface ReplicaRestartsOptions {
  /** Each uplink's replica. */
  replicas: ReadonlyMap<string, TunnelRestarter>;
  log: Logger;
  retryDelay: (failures: number) => number;
  /** A restart began or ended (for the status file). */
  onChange?: () => void;
  now?: () => number;
}

export class ReplicaRestarts {
  private s: ReplicasState;
  private readonly running = new Set<Promise<void>>();
  private readonly abort = new AbortController();
  private stopped = false;
  private readonly now: () => number;
  private readonly o: ReplicaRestartsOptions;

  constructor(o: ReplicaRestartsOptions) {
    this.o = o;
    this.now = o.now ?? Date.now;
    this.s = initialReplicas([...o.replicas.keys()], this.now());
  }

  get state(): ReplicasState {
    return this.s;
  }

  /** Each replica as the status file shows it. */
  view(): Record<string, ReplicaView> {
    return Object.fromEntries(
      Object.entries(this.s.uplinks).map(([id, r]) => [
        id,
        { restarting: r.running, restartedAt: r.restartedAt, lastError: r.lastError, retryAt: r.retryAt },
      ]),
    );
  }

  /** The edge answered through `uplink` at `at` (local clock). */
  contact(uplink: string, at: number, silenceMs: number): void {
    this.dispatch({ kind: "contact", uplink, at, silenceMs });
  }

  /** Starts nothing more; gives restarts in flight `graceMs`, then cancels them. */
  async stop(graceMs: number): Promise<void> {
    this.stopped = true;
    const all = Promise.all(this.running);
    let timer: NodeJS.Timeout | undefined;
    const done = await Promise.race([
      all.then(() => true),
      new Promise<boolean>((r) => (timer = setTimeout(() => r(false), graceMs))),
    ]);
    clearTimeout(timer);
    if (done) return;
    this.abort.abort(new Error("the agent is stopping"));
    await all;
  }

  private dispatch(e: ReplicaEvent): void {
    if (this.stopped) return;
    const r = stepReplicas(this.s, e, this.o.retryDelay);
    this.s = r.state;
    for (const x of r.effects) this.restart(x.uplink, x.silentMs, x.attempt);
    if (r.effects.length || e.kind === "restarted") this.o.onChange?.();
  }

  private restart(uplink: string, silentMs: number, attempt: number): void {
    const { log } = this.o;
    const replica = this.o.replicas.get(uplink)!;
    log.info(`${uplink} is back: restarting its pinned tunnel replica so it reconnects through it now`, {
      uplink,
      silentMs,
      attempt,
    });
    const started = this.now();
    const p = (async () => {
      let error: string | null = null;
      try {
        await replica.restart(this.abort.signal);
        log.info("pinned tunnel replica restarted", { uplink, tookMs: this.now() - started });
      } catch (err) {
        error = describeError(err).slice(0, 500);
      }
      if (this.abort.signal.aborted) return;
      this.dispatch({ kind: "restarted", uplink, at: this.now(), error });
      if (error !== null)
        log.error(`cannot restart ${uplink}'s pinned tunnel replica: ${error}`, {
          uplink,
          retryAt: new Date(this.s.uplinks[uplink]!.retryAt!).toISOString(),
        });
    })();
    this.running.add(p);
    void p.finally(() => this.running.delete(p));
  }
}
