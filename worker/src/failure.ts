import type { FieldIssue } from "#shared";

/** An API error as data: crosses the RPC boundary intact, becomes the JSON error envelope. */
export interface Failure {
  status: 400 | 401 | 403 | 404 | 409 | 410 | 413 | 415 | 426 | 429 | 503;
  code: string;
  message: string;
  issues?: FieldIssue[];
  /** For a 429: seconds until a retry can succeed. */
  retryAfter?: number;
}

export type Result<T> = { ok: true; value: T } | { ok: false; failure: Failure };

export const ok = <T>(value: T): Result<T> => ({ ok: true, value });
/** The API's one error envelope: `{ error: { code, message, issues? } }`. */
export function failureResponse(f: Failure, headers?: HeadersInit): Response {
  const error = f.issues
    ? { code: f.code, message: f.message, issues: f.issues }
    : { code: f.code, message: f.message };
  const h = new Headers(headers);
  // A refusal for sending too much says when to try again, as HTTP clients expect.
  if (f.status === 429) h.set("retry-after", String(f.retryAfter ?? 1));
  return Response.json({ error }, { status: f.status, headers: h });
}

export const fail = (
  status: Failure["status"],
  code: string,
  message: string,
  issues?: FieldIssue[],
): { ok: false; failure: Failure } => ({
  ok: false,
  failure: issues ? { status, code, message, issues } : { status, code, message },
});

/** Text parsed as JSON, or a 400 `invalid_json` naming what it was: one guard for every message kind. */
export function parseJson(text: string, what: string): Result<unknown> {
  try {
    return ok(JSON.parse(text) as unknown);
  } catch {
    return fail(400, "invalid_json", `${what} is not valid JSON`);
  }
}
