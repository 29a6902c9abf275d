// Notifications waiting to be sent: queued with the events that cause them, sent from the alarm;
// how sends to each target stand is kept in memory for the status.
import { deliver } from "../notify/deliver.ts";
import type { Queued } from "../notify/notification.ts";
import type { SiteStore, TargetSends } from "../store.ts";

/** Notifications sent per alarm at most (each is a subrequest; an invocation may make 1,000). */
const NOTIFY_BATCH = 50;

export class Outbox {
  /** Earliest notification due, kept here so scheduling costs no query. */
  private nextAt: number | null = null;
  /** Per target, read again only when something changed, so a status costs no query. */
  private sends: ReadonlyMap<string, TargetSends> = new Map();
  private delivering = false;

  constructor(
    private readonly store: SiteStore,
    /** First retry delay of a failed send, ms. */
    private readonly retryBaseMs: number,
  ) {}

  load(): void {
    this.nextAt = this.store.nextNotificationAt();
    this.sends = this.store.targetSends();
  }

  /** Inside the transaction that records the events. */
  enqueue(queued: readonly Queued[], now: number): void {
    if (!queued.length) return;
    this.store.enqueue(queued, now);
    this.nextAt = Math.min(this.nextAt ?? now, now);
    this.sends = this.store.targetSends();
  }

  deadline(): number | null {
    return this.nextAt;
  }

  standing(): ReadonlyMap<string, TargetSends> {
    return this.sends;
  }

  /**
   * Sends the notifications that are due, all at once, and records how each went; one round at a
   * time. A send that fails is retried with backoff by a later alarm. Returns whether it sent any.
   */
  async deliverDue(site: string, now: number): Promise<boolean> {
    if (this.delivering || this.nextAt === null || this.nextAt > now) return false;
    this.delivering = true;
    try {
      const due = this.store.dueNotifications(now, NOTIFY_BATCH);
      const results = await Promise.all(due.map((row) => deliver(row, site, this.retryBaseMs)));
      const done = Date.now();
      this.store.transaction(() => {
        for (const r of results) {
          r.retryAt === null
            ? this.store.settleNotification(r.row, done)
            : this.store.retryNotification(r.row, r.retryAt);
          this.store.recordAttempt(r.row.target, r.outcome, !r.outcome.ok && r.retryAt === null, done);
        }
        this.store.appendEvents(results.flatMap((r) => (r.event ? [{ ...r.event, at: done }] : [])));
      });
      this.nextAt = this.store.nextNotificationAt();
      this.sends = this.store.targetSends();
    } finally {
      this.delivering = false;
    }
    return true;
  }
}
