// The status pages' login: a viewer or admin token typed into a form becomes an HttpOnly cookie
// (never a token in a URL). The cookie is an expiry and an HMAC over it, keyed by the tokens
// themselves, so rotating either token signs everyone out. It only ever grants *reading*: every
// change of state still needs the admin token in an Authorization header.
import { parseMac, toBase64Url } from "#shared";
import type { Env } from "../env.ts";

export const SESSION_COOKIE = "wanwatch_session";
export const SESSION_MAX_AGE_S = 7 * 24 * 3600;

const encoder = new TextEncoder();

async function key(env: Env): Promise<CryptoKey | null> {
  if (!env.ADMIN_TOKEN && !env.VIEWER_TOKEN) return null;
  const material = await crypto.subtle.digest(
    "SHA-256",
    encoder.encode(`wanwatch-session\0${env.ADMIN_TOKEN ?? ""}\0${env.VIEWER_TOKEN ?? ""}`),
  );
  return crypto.subtle.importKey("raw", material, { name: "HMAC", hash: "SHA-256" }, false, ["sign", "verify"]);
}

async function mac(k: CryptoKey, expires: number): Promise<string> {
  return toBase64Url(await crypto.subtle.sign("HMAC", k, encoder.encode(`viewer:${expires}`)));
}

/** The Set-Cookie value for a fresh session; `secure` on HTTPS. */
export async function issueSession(env: Env, now: number, secure: boolean): Promise<string> {
  const k = await key(env);
  if (!k) throw new Error("no token to sign a session with");
  const expires = Math.floor(now / 1000) + SESSION_MAX_AGE_S;
  return cookie(`v1.${expires}.${await mac(k, expires)}`, SESSION_MAX_AGE_S, secure);
}

export function clearedSession(secure: boolean): string {
  return cookie("", 0, secure);
}

function cookie(value: string, maxAge: number, secure: boolean): string {
  return `${SESSION_COOKIE}=${value}; Path=/; Max-Age=${maxAge}; HttpOnly; SameSite=Strict${secure ? "; Secure" : ""}`;
}

/** Whether the request carries a valid, unexpired session cookie. */
export async function hasSession(req: Request, env: Env, now: number): Promise<boolean> {
  const raw = (req.headers.get("cookie") ?? "").split(/;\s*/).find((c) => c.startsWith(`${SESSION_COOKIE}=`));
  const m = raw && /^v1\.(\d{1,12})\.(.*)$/.exec(raw.slice(SESSION_COOKIE.length + 1));
  // Only the MAC's canonical spelling is a session: no second spelling of it passes.
  const given = m ? parseMac(m[2]!) : null;
  if (!m || !given) return false;
  const expires = Number(m[1]);
  if (expires * 1000 <= now) return false;
  const k = await key(env);
  if (!k) return false;
  return crypto.subtle.verify("HMAC", k, given, encoder.encode(`viewer:${expires}`));
}
