// Admin and viewer tokens: compared in constant time, over digests so lengths leak nothing.
import { fail, ok, type Result } from "../failure.ts";
import type { Env } from "../env.ts";
import { hasSession } from "./session.ts";

const encoder = new TextEncoder();

async function sameSecret(given: string, expected: string): Promise<boolean> {
  const [a, b] = await Promise.all([
    crypto.subtle.digest("SHA-256", encoder.encode(given)),
    crypto.subtle.digest("SHA-256", encoder.encode(expected)),
  ]);
  return crypto.subtle.timingSafeEqual(a, b);
}

function bearer(req: Request): string | null {
  const m = /^Bearer\s+(\S+)\s*$/i.exec(req.headers.get("authorization") ?? "");
  return m ? m[1]! : null;
}

export async function authorizeAdmin(req: Request, env: Env): Promise<Result<"admin">> {
  if (!env.ADMIN_TOKEN)
    return fail(
      503,
      "admin_token_missing",
      "the edge has no ADMIN_TOKEN: on Cloudflare run `npx wrangler secret put ADMIN_TOKEN`; on a local edge put ADMIN_TOKEN=… in .dev.vars (see .dev.vars.example) and restart it",
    );
  const token = bearer(req);
  if (!token) return fail(401, "unauthorized", "send Authorization: Bearer <admin token>");
  return (await sameSecret(token, env.ADMIN_TOKEN))
    ? ok("admin")
    : fail(403, "forbidden", "the token is not the admin token");
}

/** Which of the two tokens this is, if either. */
export async function tokenRole(token: string, env: Env): Promise<"admin" | "viewer" | null> {
  if (env.ADMIN_TOKEN && (await sameSecret(token, env.ADMIN_TOKEN))) return "admin";
  if (env.VIEWER_TOKEN && (await sameSecret(token, env.VIEWER_TOKEN))) return "viewer";
  return null;
}

/** Viewer rights: a bearer token, the status pages' session cookie, or a public status. */
export async function authorizeViewer(req: Request, env: Env): Promise<Result<"admin" | "viewer" | "public">> {
  const token = bearer(req);
  if (token) {
    const role = await tokenRole(token, env);
    return role ? ok(role) : fail(403, "forbidden", "the token is neither the viewer nor the admin token");
  }
  if (env.PUBLIC_STATUS === "true") return ok("public");
  if (await hasSession(req, env, Date.now())) return ok("viewer");
  return fail(401, "unauthorized", "send Authorization: Bearer <viewer token>");
}
