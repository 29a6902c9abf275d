// The other spellings of one base64url MAC: the same 32 bytes written with the last character's
// two spare bits set, with padding, or in the standard alphabet. Only the canonical one may pass.
const ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

export function respellings(sig: string): string[] {
  const head = sig.slice(0, -1);
  const last = ALPHABET.indexOf(sig.at(-1)!);
  const spare = [1, 2, 3].map((bits) => head + ALPHABET[last | bits]);
  const standard = sig.replaceAll("-", "+").replaceAll("_", "/");
  return [...spare, `${sig}=`, ...(standard === sig ? [] : [standard])];
}

/** Decodes base64 in any of its spellings, as a lenient decoder would: the oracle that they are one MAC. */
export const lenientBytes = (s: string) => Buffer.from(s.replaceAll("-", "+").replaceAll("_", "/"), "base64");
