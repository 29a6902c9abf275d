// How sends to each notification target stand, for the status: pure.
import type { NotifyStatus, NotifyTarget, NotifyTargetStatus } from "#shared";
import type { TargetSends } from "../store.ts";
import { describeTarget, hostOf } from "./notification.ts";

/** Each target by kind and host, never by URL; two on one host are told apart by `#2`, `#3`… */
export function targetNames(targets: readonly NotifyTarget[]): string[] {
  const seen = new Map<string, number>();
  return targets.map((t) => {
    const name = describeTarget(t);
    const n = (seen.get(name) ?? 0) + 1;
    seen.set(name, n);
    return n > 1 ? `${name} #${n}` : name;
  });
}

/**
 * The configured targets in config order, then any target no longer configured that still has
 * sends waiting (they are retried to the end).
 */
export function notifyStatus(
  configured: readonly NotifyTarget[],
  sends: ReadonlyMap<string, TargetSends>,
): NotifyStatus {
  const keys = [...new Set(configured.map((t) => JSON.stringify(t)))];
  for (const [key, s] of sends) if (s.pending > 0 && !keys.includes(key)) keys.push(key);
  const listed: NotifyTarget[] = keys.map((key) => JSON.parse(key));
  const names = targetNames(listed);
  const targets = listed.map((target, i): NotifyTargetStatus => {
    const s = sends.get(keys[i]!);
    return {
      target: names[i]!,
      kind: target.kind,
      host: hostOf(target),
      pending: s?.pending ?? 0,
      retrying: s?.retrying ?? 0,
      nextAttemptAt: s?.nextAt ?? null,
      lastError: s?.lastError ?? null,
      lastErrorAt: s?.lastErrorAt ?? null,
      lastDeliveredAt: s?.lastDeliveredAt ?? null,
      delivered: s?.delivered ?? 0,
      failed: s?.failed ?? 0,
      failedAttempts: s?.failedAttempts ?? 0,
    };
  });
  const next = targets.flatMap((t) => (t.nextAttemptAt === null ? [] : [t.nextAttemptAt]));
  return {
    pending: targets.reduce((n, t) => n + t.pending, 0),
    nextAttemptAt: next.length ? Math.min(...next) : null,
    targets,
  };
}
