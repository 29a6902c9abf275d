// Sends one queued notification and says what should become of it: the only place the edge
// talks to the outside world.
import { backoffDelay } from "../../../shared/src/backoff.ts";
import type { EventOf } from "../site/events.ts";
import type { OutboxRow } from "../store.ts";
import { describeTarget, outcomeOf, request, subjectOf, type SendOutcome } from "./notification.ts";

/** Attempts before giving up: with the default 5 s base growing ×3 to 1 h, about 3½ hours. */
export const MAX_ATTEMPTS = 9;
const SEND_TIMEOUT_MS = 10_000;

export interface DeliveryResult {
  row: OutboxRow;
  /** Sent, or given up: the row is done with. Otherwise it waits until `retryAt`. */
  settled: boolean;
  retryAt: number | null;
  /** What the event log records: the outcome once settled, nothing for a retry. */
  event: Omit<EventOf<"notify">, "at"> | Omit<EventOf<"notify-failed">, "at"> | null;
}

async function send(url: string, headers: Record<string, string>, body: string): Promise<SendOutcome> {
  try {
    const res = await fetch(url, { method: "POST", headers, body, redirect: "manual", signal: AbortSignal.timeout(SEND_TIMEOUT_MS) });
    await res.body?.cancel();
    return outcomeOf(res.status);
  } catch (err) {
    // Never the error's own text: it may quote the URL, and the URL may hold a secret.
    const name = (err as Error).name;
    return { ok: false, error: name === "TimeoutError" ? `no answer within ${SEND_TIMEOUT_MS / 1000} s` : `could not connect (${name})`, retry: true };
  }
}

/** `retryBaseMs`: the first retry delay; later ones grow from it. */
export async function deliver(row: OutboxRow, site: string, retryBaseMs: number): Promise<DeliveryResult> {
  const subject = subjectOf(row.event)!;
  const req = request(row.target.kind, { id: `${site}:${row.event.seq}`, site, subject, event: row.event, replaced: row.replaced });
  const outcome = await send(row.target.url, req.headers, req.body);
  const attempt = row.attempts + 1;
  const target = describeTarget(row.target);
  const data = { target, trigger: subject.trigger, eventSeq: row.event.seq, attempts: attempt };
  if (outcome.ok)
    return { row, settled: true, retryAt: null, event: { kind: "notify", message: `notified ${target} of ${subject.trigger}: delivered (HTTP ${outcome.status}${attempt > 1 ? `, attempt ${attempt}` : ""})`, data: { ...data, delivered: true } } };
  if (!outcome.retry || attempt >= MAX_ATTEMPTS)
    return {
      row,
      settled: true,
      retryAt: null,
      event: { kind: "notify-failed", message: `could not notify ${target} of ${subject.trigger}: ${outcome.error}${outcome.retry ? `, gave up after ${attempt} attempts` : ", not retried"}`, data: { ...data, delivered: false, error: outcome.error } },
    };
  return { row, settled: false, retryAt: Date.now() + backoffDelay(row.attempts, { baseMs: retryBaseMs, maxMs: 3_600_000, factor: 3, jitter: 0.2 }), event: null };
}
