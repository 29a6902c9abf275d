import { z } from "zod";
import { NotifyTarget } from "./config.ts";

/**
 * How sends to one notification target stand. A target is named by kind and host only (its URL
 * may hold a secret); two targets on one host are told apart by a `#2` suffix.
 */
export const NotifyTargetStatus = z.object({
  target: z.string(),
  kind: NotifyTarget.shape.kind,
  host: z.string(),
  /** Notifications waiting for this target: due now, or failed and waiting for a retry. */
  pending: z.int(),
  /** Of those, how many have failed at least once. */
  retrying: z.int(),
  nextAttemptAt: z.int().nullable(),
  lastError: z.string().nullable(),
  lastErrorAt: z.int().nullable(),
  lastDeliveredAt: z.int().nullable(),
  delivered: z.int(),
  /** Given up on (after every retry, or refused for good). */
  failed: z.int(),
  /** Attempts that failed, retried or not. */
  failedAttempts: z.int(),
});
export type NotifyTargetStatus = z.infer<typeof NotifyTargetStatus>;

export const NotifyStatus = z.object({
  pending: z.int(),
  nextAttemptAt: z.int().nullable(),
  targets: z.array(NotifyTargetStatus),
});
export type NotifyStatus = z.infer<typeof NotifyStatus>;

/** One target's answer to a test notification. */
export const NotifyTestResult = z.object({
  target: z.string(),
  kind: NotifyTarget.shape.kind,
  host: z.string(),
  ok: z.boolean(),
  /** The receiver's HTTP status, when it answered. */
  status: z.int().nullable(),
  error: z.string().nullable(),
  ms: z.number(),
});
export type NotifyTestResult = z.infer<typeof NotifyTestResult>;

/** `POST /v1/sites/:site/notify/test`. */
export const NotifyTestResponse = z.object({ site: z.string(), at: z.int(), results: z.array(NotifyTestResult) });
export type NotifyTestResponse = z.infer<typeof NotifyTestResponse>;
