import type { Failure, Result } from "../failure.ts";

/** The API's one error envelope: `{ error: { code, message, issues? } }`. */
export function failureResponse(f: Failure, headers?: HeadersInit): Response {
  const error = f.issues ? { code: f.code, message: f.message, issues: f.issues } : { code: f.code, message: f.message };
  return Response.json({ error }, { status: f.status, headers });
}

export function resultResponse<T>(r: Result<T>, status = 200): Response {
  return r.ok ? Response.json(r.value, { status }) : failureResponse(r.failure);
}
