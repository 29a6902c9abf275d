// `wanwatch site notify --test`: a test notification to every target now, one at a time per site
// and at most one per NOTIFY_TEST_INTERVAL_MS, so the endpoint cannot be used to hammer a receiver.
import type { NotifyTestResponse } from "#shared";
import { fail, ok, type Result } from "../failure.ts";
import { sendTest } from "../notify/deliver.ts";
import { targetNames } from "../notify/standing.ts";
import type { SiteStore } from "../store.ts";
import type { ConfiguredSite } from "./configured.ts";

export const NOTIFY_TEST_INTERVAL_MS = 30_000;

export class NotifyTester {
  private running = false;

  constructor(private readonly store: SiteStore) {}

  /** Sends the tests and records one `notify-test` event; nothing else is written. */
  async run(site: ConfiguredSite, now: number): Promise<Result<NotifyTestResponse>> {
    const targets = site.config.notify;
    if (!targets.length)
      return fail(
        409,
        "no_notify_targets",
        `site "${site.id}" has no notify targets: add them under notify: in the site file, then run wanwatch site apply FILE --site ${site.id}`,
      );
    const last = this.store.lastNotifyTestAt();
    const wait = this.running ? NOTIFY_TEST_INTERVAL_MS : last === null ? 0 : last + NOTIFY_TEST_INTERVAL_MS - now;
    if (wait > 0) {
      const seconds = Math.ceil(wait / 1000);
      return {
        ok: false,
        failure: {
          status: 429,
          code: "rate_limited",
          message: `a test notification was sent less than ${NOTIFY_TEST_INTERVAL_MS / 1000} s ago: try again in ${seconds} s`,
          retryAfter: seconds,
        },
      };
    }
    this.running = true;
    try {
      const names = targetNames(targets);
      const results = await Promise.all(targets.map((t, i) => sendTest(t, names[i]!, site.id, now)));
      const failed = results.filter((r) => !r.ok).length;
      const each = results.map((r) => `${r.target}: ${r.ok ? `HTTP ${r.status}` : r.error} in ${r.ms} ms`).join("; ");
      const message = `test notification: ${results.length - failed} of ${results.length} target${results.length > 1 ? "s" : ""} answered (${each})`;
      this.store.appendEvents([
        { at: Date.now(), kind: "notify-test", message, data: { targets: results.length, failed } },
      ]);
      return ok({ site: site.id, at: now, results });
    } finally {
      this.running = false;
    }
  }
}
