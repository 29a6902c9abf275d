import type { Failure, Result } from "../failure.ts";

/** The API's one error envelope: `{ error: { code, message, issues? } }`. */
export function failureResponse(f: Failure, headers?: HeadersInit): Response {
  const error = f.issues ? { code: f.code, message: f.message, issues: f.issues } : { code: f.code, message: f.message };
  const h = new Headers(headers);
  // A refusal for sending too much says when to try again, as HTTP clients expect.
  if (f.status === 429) h.set("retry-after", "1");
  return Response.json({ error }, { status: f.status, headers: h });
}

export function resultResponse<T>(r: Result<T>, status = 200): Response {
  return r.ok ? Response.json(r.value, { status }) : failureResponse(r.failure);
}
