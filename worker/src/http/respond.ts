import { failureResponse, type Result } from "../failure.ts";

export function resultResponse<T>(r: Result<T>, status = 200): Response {
  return r.ok ? Response.json(r.value, { status }) : failureResponse(r.failure);
}
