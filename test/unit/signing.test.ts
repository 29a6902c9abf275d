import { describe, expect, it } from "vitest";
import { deriveSigningKey, importSigningKey, newSecret, sign, verify } from "../../shared/src/index.ts";

describe("message signing", () => {
  it("verifies what was signed and nothing else", async () => {
    const key = await importSigningKey(await deriveSigningKey(newSecret()));
    const parts = { direction: "up" as const, site: "office", agent: "srv1", ts: 1_700_000_000_000, body: '{"a":1}' };
    const sig = await sign(key, parts);
    expect(await verify(key, parts, sig)).toBe(true);
    for (const change of [{ direction: "down" as const }, { site: "other" }, { agent: "srv2" }, { ts: parts.ts + 1 }, { body: '{"a":2}' }])
      expect(await verify(key, { ...parts, ...change }, sig)).toBe(false);
    const other = await importSigningKey(await deriveSigningKey(newSecret()));
    expect(await verify(other, parts, sig)).toBe(false);
    expect(await verify(key, parts, "not base64!")).toBe(false);
  });

  it("derives the same key from the same secret on both sides", async () => {
    const secret = newSecret();
    expect(await deriveSigningKey(secret)).toBe(await deriveSigningKey(secret));
    expect(await deriveSigningKey(secret)).not.toContain(secret);
  });
});
