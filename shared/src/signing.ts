// HMAC-SHA256 message signing, shared by the edge (workerd) and the agent (Node ≥ 20): both have WebCrypto.

/** How far a message's timestamp may be from the edge's clock. Agents track their offset to the edge. */
export const MAX_SKEW_MS = 30_000;

/** "up": agent → edge; "down": edge → agent. Part of the signed input so neither can be replayed the other way. */
export type Direction = "up" | "down";

export interface SignedParts {
  direction: Direction;
  site: string;
  agent: string;
  ts: number;
  body: string;
}

const encoder = new TextEncoder();

export function signingInput(p: SignedParts): string {
  return `wanwatch-v1\n${p.direction}\n${p.site}\n${p.agent}\n${p.ts}\n${p.body}`;
}

export function toBase64Url(bytes: ArrayBuffer | Uint8Array): string {
  const b = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
  let s = "";
  for (const x of b) s += String.fromCharCode(x);
  return btoa(s).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}

/**
 * The bytes of a base64url string, or null unless it is their one canonical spelling (URL alphabet,
 * no padding, spare bits of the last character zero). Four spellings decode to the same 32 bytes
 * otherwise, and every check keyed by the text (a replay guard, a cookie) could be dodged by one.
 */
function fromBase64Url(s: string): Uint8Array<ArrayBuffer> | null {
  // 4n + 1 characters are no base64 at all, and atob throws on them: a forgery must not crash us.
  if (!/^[A-Za-z0-9_-]*$/.test(s) || s.length % 4 === 1) return null;
  const bytes = Uint8Array.from(
    atob(s.replaceAll("-", "+").replaceAll("_", "/") + "=".repeat((4 - (s.length % 4)) % 4)),
    (c) => c.charCodeAt(0),
  );
  return toBase64Url(bytes) === s ? bytes : null;
}

/** A MAC from its text: exactly 32 bytes, canonically spelled, or null. */
export function parseMac(sig: string): Uint8Array<ArrayBuffer> | null {
  const mac = fromBase64Url(sig);
  return mac && mac.length === 32 ? mac : null;
}

/** A fresh agent secret: 32 random bytes, base64url. Shown once at enrolment. */
export function newSecret(): string {
  return toBase64Url(crypto.getRandomValues(new Uint8Array(32)));
}

/** An imported HMAC key; named without DOM or Node types so both runtimes' type sets accept it. */
export type SigningKey = Awaited<ReturnType<typeof crypto.subtle.importKey>>;

async function hmacKey(raw: Uint8Array, usages: ("sign" | "verify")[]): Promise<SigningKey> {
  // A copy: runtimes type encode()'s buffer as possibly shared, which importKey refuses.
  return crypto.subtle.importKey("raw", new Uint8Array(raw), { name: "HMAC", hash: "SHA-256" }, false, usages);
}

/**
 * The signing key both sides derive from the agent's secret. The edge stores only this, so the
 * secret an operator copied never sits at rest on the edge.
 */
export async function deriveSigningKey(secret: string): Promise<string> {
  const key = await hmacKey(encoder.encode(secret), ["sign"]);
  return toBase64Url(await crypto.subtle.sign("HMAC", key, encoder.encode("wanwatch signing key v1")));
}

export async function importSigningKey(signingKey: string): Promise<SigningKey> {
  const raw = fromBase64Url(signingKey);
  if (raw?.length !== 32) throw new Error("signing key must be 32 bytes, canonical base64url");
  return hmacKey(raw, ["sign", "verify"]);
}

export async function sign(key: SigningKey, parts: SignedParts): Promise<string> {
  return toBase64Url(await crypto.subtle.sign("HMAC", key, encoder.encode(signingInput(parts))));
}

/** Constant-time: WebCrypto's verify compares the MACs itself. */
export async function verify(key: SigningKey, parts: SignedParts, sig: string): Promise<boolean> {
  const mac = parseMac(sig);
  if (!mac) return false;
  return crypto.subtle.verify("HMAC", key, mac, encoder.encode(signingInput(parts)));
}
