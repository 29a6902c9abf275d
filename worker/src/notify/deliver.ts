// Sends one queued notification and says what should become of it: the only place the edge
// talks to the outside world.
import type { NotifyTarget, NotifyTestResult } from "#shared";
import { backoffDelay } from "#shared";
import type { EventOf } from "../site/events.ts";
import type { OutboxRow } from "../store.ts";
import {
  describeTarget,
  hostOf,
  outcomeOf,
  request,
  subjectOf,
  type Delivery,
  type SendOutcome,
} from "./notification.ts";

/** Attempts before giving up: with the default 5 s base growing ×3 to 1 h, about 3½ hours. */
export const MAX_ATTEMPTS = 9;
const SEND_TIMEOUT_MS = 10_000;

/** An event of one of these kinds, before its time is set. */
type Unstamped<K extends "notify" | "notify-failed" | "notify-retrying"> = K extends unknown
  ? Omit<EventOf<K>, "at">
  : never;

export interface DeliveryResult {
  row: OutboxRow;
  outcome: SendOutcome;
  /** Null once settled (sent, or given up: the row is done with); otherwise when to try again. */
  retryAt: number | null;
  /** What the event log records: the outcome once settled, and the first failure of a send at once. */
  event: Unstamped<"notify" | "notify-failed" | "notify-retrying"> | null;
}

async function send(target: NotifyTarget, d: Delivery): Promise<SendOutcome> {
  const { headers, body } = request(target.kind, d);
  try {
    const res = await fetch(target.url, {
      method: "POST",
      headers,
      body,
      redirect: "manual",
      signal: AbortSignal.timeout(SEND_TIMEOUT_MS),
    });
    await res.body?.cancel();
    return outcomeOf(res.status);
  } catch (err) {
    // Never the error's own text: it may quote the URL, and the URL may hold a secret.
    const name = (err as Error).name;
    return {
      ok: false,
      error: name === "TimeoutError" ? `no answer within ${SEND_TIMEOUT_MS / 1000} s` : `could not connect (${name})`,
      retry: true,
    };
  }
}

/** `retryBaseMs`: the first retry delay; later ones grow from it. */
export async function deliver(row: OutboxRow, site: string, retryBaseMs: number): Promise<DeliveryResult> {
  const subject = subjectOf(row.event)!;
  const outcome = await send(row.target, {
    id: `${site}:${row.event.seq}`,
    site,
    subject,
    event: row.event,
    replaced: row.replaced,
  });
  const attempt = row.attempts + 1;
  const target = describeTarget(row.target);
  const data = { target, trigger: subject.trigger, eventSeq: row.event.seq, attempts: attempt };
  if (outcome.ok)
    return {
      row,
      outcome,
      retryAt: null,
      event: {
        kind: "notify",
        message: `notified ${target} of ${subject.trigger}: delivered (HTTP ${outcome.status}${attempt > 1 ? `, attempt ${attempt}` : ""})`,
        data: { ...data, delivered: true },
      },
    };
  if (!outcome.retry || attempt >= MAX_ATTEMPTS)
    return {
      row,
      outcome,
      retryAt: null,
      event: {
        kind: "notify-failed",
        message: `could not notify ${target} of ${subject.trigger}: ${outcome.error}${outcome.retry ? `, gave up after ${attempt} attempts` : ", not retried"}`,
        data: { ...data, delivered: false, error: outcome.error },
      },
    };
  const retryAt =
    Date.now() + backoffDelay(row.attempts, { baseMs: retryBaseMs, maxMs: 3_600_000, factor: 3, jitter: 0.2 });
  // Retries run for hours: the first failure of a send is recorded at once, the later ones are not.
  const event: DeliveryResult["event"] =
    row.attempts === 0
      ? {
          kind: "notify-retrying",
          message: `could not notify ${target} of ${subject.trigger}: ${outcome.error}; retrying (next attempt at ${new Date(retryAt).toISOString()}, up to ${MAX_ATTEMPTS} attempts)`,
          data: { ...data, error: outcome.error, nextAttemptAt: retryAt },
        }
      : null;
  return { row, outcome, retryAt, event };
}

/** A test notification to one target (`name`d as in the status), now: how it went and how long it took. Never retried. */
export async function sendTest(
  target: NotifyTarget,
  name: string,
  site: string,
  now: number,
): Promise<NotifyTestResult> {
  const event = {
    seq: 0,
    at: now,
    kind: "notify-test",
    message: "test notification: this target is set up right",
    data: null,
  };
  const started = Date.now();
  const outcome = await send(target, {
    id: `${site}:test:${now}`,
    site,
    subject: { trigger: "test", topic: "test", severity: "info" },
    event,
    replaced: 0,
  });
  const ms = Date.now() - started;
  const named = { target: name, kind: target.kind, host: hostOf(target) };
  return outcome.ok
    ? { ...named, ok: true, status: outcome.status, error: null, ms }
    : { ...named, ok: false, status: outcome.status ?? null, error: outcome.error, ms };
}
