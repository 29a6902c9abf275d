// The plain HTTPS heartbeat: used while an uplink's WebSocket cannot be established.
import { HEADER_AGENT, HEADER_NOW, HEADER_SIG, HEADER_TS, type EdgeMessage } from "#shared";
import type { EdgeClock } from "./clock.ts";
import { apiError, header, httpCall, type HttpResponse } from "./http.ts";
import type { EdgeSigner } from "./signer.ts";

export type HttpBeatResult =
  | { ok: true; message: EdgeMessage; rttMs: number }
  | { ok: false; code: string; message: string; status?: number };

export async function postHeartbeat(args: {
  edge: string;
  site: string;
  body: string;
  signer: EdgeSigner;
  clock: EdgeClock;
  localAddress?: string;
  family?: 4 | 6;
  timeoutMs: number;
  localNow?: () => number;
}): Promise<HttpBeatResult> {
  const localNow = args.localNow ?? Date.now;
  const ts = args.clock.now();
  const sig = await args.signer.sign(args.body, ts);
  const url = new URL(`/v1/sites/${encodeURIComponent(args.site)}/heartbeat`, args.edge);
  const sentAt = localNow();
  let res: HttpResponse;
  try {
    res = await httpCall(url, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        [HEADER_AGENT]: args.signer.agent,
        [HEADER_TS]: String(ts),
        [HEADER_SIG]: sig,
      },
      body: args.body,
      localAddress: args.localAddress,
      family: args.family,
      timeoutMs: args.timeoutMs,
    });
  } catch (err) {
    return { ok: false, code: "unreachable", message: describe(err) };
  }
  const receivedAt = localNow();
  // Every answer, errors included, tells the edge's time: how a wrong clock corrects itself.
  const edgeNow = Number(header(res.headers, HEADER_NOW));
  if (Number.isFinite(edgeNow) && edgeNow > 0) args.clock.observe(edgeNow, sentAt, receivedAt);
  if (res.status !== 200) {
    const e = apiError(res.body);
    // The field issues say which claim was refused (an uplink the site does not have, say).
    const message = e
      ? [e.message, ...(e.issues ?? []).map((i) => `${i.path}: ${i.message}`)].join("; ")
      : `HTTP ${res.status}`;
    return { ok: false, status: res.status, code: e?.code ?? `http_${res.status}`, message };
  }
  const v = await args.signer.verifyDown(
    res.body,
    Number(header(res.headers, HEADER_TS)),
    header(res.headers, HEADER_SIG) ?? "",
  );
  if (!v.ok) return { ok: false, status: 200, code: "unverified_answer", message: `edge answer ignored: ${v.reason}` };
  return { ok: true, message: v.message, rttMs: receivedAt - sentAt };
}

function describe(err: unknown): string {
  const e = err as Error & { cause?: { code?: string; message?: string } };
  return e.cause?.code ? `${e.message}: ${e.cause.code}` : e.message;
}
