// The host's side of an enrolment token: ask the edge what it enrols (spending nothing), then
// redeem it for the agent's secret. The token goes in a POST body, never in a URL.
import { EnrolmentGrant, RedeemResponse } from "#shared";
import { apiError, httpCall, type HttpResponse } from "../edge/http.ts";
import { UserError } from "../lib/errors.ts";

async function post(edge: URL, body: unknown): Promise<HttpResponse> {
  try {
    return await httpCall(new URL("/v1/enroll", edge), {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
      timeoutMs: 15_000,
    });
  } catch (err) {
    const c = (err as { cause?: { code?: string } }).cause;
    throw new UserError(
      `cannot reach the edge at ${edge.origin}${c?.code ? ` (${c.code})` : ""}: nothing enrolled`,
      1,
      {
        cause: err,
      },
    );
  }
}

function answer<T>(
  edge: URL,
  res: HttpResponse,
  schema: { safeParse(v: unknown): { success: true; data: T } | { success: false } },
): T {
  const e = apiError(res.body);
  if (e) throw new UserError(`the edge refused the enrolment token (${e.code}): ${e.message}`);
  let json: unknown = null;
  try {
    json = JSON.parse(res.body);
  } catch {
    // Reported below.
  }
  const r = schema.safeParse(json);
  if (res.status < 200 || res.status > 299 || !r.success)
    throw new UserError(
      `the edge at ${edge.origin} answered HTTP ${res.status} to the enrolment: is it a wanwatch edge?`,
    );
  return r.data;
}

/** What the token enrols; it stays unused. */
export async function checkToken(edge: URL, token: string): Promise<EnrolmentGrant> {
  return answer(edge, await post(edge, { token, check: true }), EnrolmentGrant);
}

/** Spends the token: the agent is enrolled, and this is its secret. */
export async function redeemToken(edge: URL, token: string): Promise<RedeemResponse> {
  return answer(edge, await post(edge, { token }), RedeemResponse);
}
