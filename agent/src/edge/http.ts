// One HTTP request through a chosen source address. fetch() cannot bind a local address; node:http
// can, and the kernel's per-uplink policy routing then sends the packet out through that uplink.
import { request as httpRequest, type IncomingHttpHeaders } from "node:http";
import { request as httpsRequest } from "node:https";

export interface HttpResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

export interface HttpOptions {
  method?: string;
  headers?: Record<string, string>;
  body?: string;
  /** Source address to bind (the uplink's address); undefined lets the kernel choose. */
  localAddress?: string;
  /** The edge's A or AAAA record; unset: whichever the name resolves to. */
  family?: 4 | 6;
  timeoutMs?: number;
  signal?: AbortSignal;
}

const MAX_BODY = 1 << 20;

export function httpCall(url: string | URL, opts: HttpOptions = {}): Promise<HttpResponse> {
  const u = typeof url === "string" ? new URL(url) : url;
  const request = u.protocol === "https:" ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const req = request(
      u,
      {
        method: opts.method ?? "GET",
        headers: {
          ...(opts.body !== undefined ? { "content-length": String(Buffer.byteLength(opts.body)) } : {}),
          ...opts.headers,
        },
        localAddress: opts.localAddress,
        family: opts.family,
        timeout: opts.timeoutMs ?? 5_000,
        signal: opts.signal,
      },
      (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on("data", (c: Buffer) => {
          size += c.length;
          if (size > MAX_BODY) req.destroy(new Error(`response from ${u.host} exceeds ${MAX_BODY} bytes`));
          else chunks.push(c);
        });
        res.on("end", () =>
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString("utf8") }),
        );
        res.on("error", (err) => reject(new Error(`reading the answer from ${u.host} failed`, { cause: err })));
      },
    );
    req.on("timeout", () => req.destroy(new Error(`no answer from ${u.host} within ${opts.timeoutMs ?? 5_000} ms`)));
    req.on("error", (err) =>
      reject(
        new Error(
          `${opts.method ?? "GET"} ${u.origin}${u.pathname} failed${opts.localAddress ? ` (from ${opts.localAddress})` : ""}`,
          { cause: err },
        ),
      ),
    );
    if (opts.body !== undefined) req.write(opts.body);
    req.end();
  });
}

export function header(headers: IncomingHttpHeaders, name: string): string | undefined {
  const v = headers[name.toLowerCase()];
  return Array.isArray(v) ? v[0] : v;
}

/** The `error` of the API's envelope, when the body is one. */
export function apiError(
  body: string,
): { code: string; message: string; issues?: { path: string; message: string }[] } | null {
  try {
    const j = JSON.parse(body) as { error?: { code?: unknown; message?: unknown; issues?: unknown } };
    if (j && typeof j.error?.code === "string" && typeof j.error.message === "string")
      return j.error as { code: string; message: string; issues?: { path: string; message: string }[] };
  } catch {
    // Not JSON: the caller reports the status alone.
  }
  return null;
}
