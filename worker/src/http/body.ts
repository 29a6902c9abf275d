// Request bodies: size-capped while streaming (a lying Content-Length cannot exhaust memory),
// strict UTF-8, JSON, then the zod schema; every failure names what was wrong.
import type { z } from "zod";
import { fieldIssues } from "#shared";
import { fail, ok, type Result } from "../failure.ts";

export const MAX_ADMIN_BODY_BYTES = 64 * 1024;

export async function readText(req: Request, maxBytes: number): Promise<Result<string>> {
  const tooLarge = () => fail(413, "payload_too_large", `request body is larger than ${maxBytes} bytes`);
  if (Number(req.headers.get("content-length") ?? 0) > maxBytes) return tooLarge();
  if (!req.body) return ok("");
  const reader = req.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > maxBytes) {
      await reader.cancel();
      return tooLarge();
    }
    chunks.push(value);
  }
  const bytes = new Uint8Array(total);
  let at = 0;
  for (const c of chunks) {
    bytes.set(c, at);
    at += c.byteLength;
  }
  try {
    return ok(new TextDecoder("utf-8", { fatal: true, ignoreBOM: false }).decode(bytes));
  } catch {
    return fail(400, "invalid_encoding", "request body is not valid UTF-8");
  }
}

export function parseWith<S extends z.ZodType>(schema: S, value: unknown, what: string): Result<z.infer<S>> {
  const r = schema.safeParse(value);
  return r.success ? ok(r.data) : fail(400, "validation_failed", `invalid ${what}`, fieldIssues(r.error));
}

export async function readJson<S extends z.ZodType>(
  req: Request,
  schema: S,
  what: string,
  maxBytes = MAX_ADMIN_BODY_BYTES,
): Promise<Result<z.infer<S>>> {
  const type = req.headers.get("content-type") ?? "";
  if (!/^application\/json\b/i.test(type))
    return fail(415, "unsupported_media_type", "send the body as application/json");
  const text = await readText(req, maxBytes);
  if (!text.ok) return text;
  let json: unknown;
  try {
    json = JSON.parse(text.value);
  } catch (err) {
    return fail(400, "invalid_json", `request body is not valid JSON: ${(err as Error).message}`);
  }
  return parseWith(schema, json, what);
}
