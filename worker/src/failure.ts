import type { FieldIssue } from "../../shared/src/index.ts";

/** An API error as data: crosses the RPC boundary intact, becomes the JSON error envelope. */
export interface Failure {
  status: 400 | 401 | 403 | 404 | 409 | 413 | 415 | 426 | 429 | 503;
  code: string;
  message: string;
  issues?: FieldIssue[];
}

export type Result<T> = { ok: true; value: T } | { ok: false; failure: Failure };

export const ok = <T>(value: T): Result<T> => ({ ok: true, value });
export const fail = (status: Failure["status"], code: string, message: string, issues?: FieldIssue[]): { ok: false; failure: Failure } => ({
  ok: false,
  failure: issues ? { status, code, message, issues } : { status, code, message },
});
