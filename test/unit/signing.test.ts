import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { deriveSigningKey, importSigningKey, newSecret, parseMac, sign, verify } from "../../shared/src/index.ts";
import { lenientBytes, respellings } from "../respell.ts";

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

describe("canonical spelling", () => {
  it("accepts a MAC in its one canonical spelling only, though every respelling decodes to the same bytes", async () => {
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ minLength: 32, maxLength: 32 }), async (bytes) => {
        const sig = Buffer.from(bytes).toString("base64url");
        expect(parseMac(sig)).toEqual(new Uint8Array(bytes));
        const others = respellings(sig);
        expect(others.length).toBeGreaterThanOrEqual(4);
        for (const other of others) {
          expect(lenientBytes(other).equals(Buffer.from(bytes)), other).toBe(true);
          expect(parseMac(other), other).toBeNull();
        }
      }),
    );
  });

  it("verifies a signature in its canonical spelling only", async () => {
    const key = await importSigningKey(await deriveSigningKey(newSecret()));
    const parts = { direction: "up" as const, site: "office", agent: "srv1", ts: 1_700_000_000_000, body: "{}" };
    for (let i = 0; i < 20; i++) {
      const sig = await sign(key, { ...parts, ts: parts.ts + i });
      expect(await verify(key, { ...parts, ts: parts.ts + i }, sig)).toBe(true);
      for (const other of respellings(sig)) expect(await verify(key, { ...parts, ts: parts.ts + i }, other), other).toBe(false);
    }
  });

  it("refuses text that is no base64url at all, and a key of the wrong length", async () => {
    for (const s of ["", "A", "AAAAA", "not base64!", "A".repeat(42), "A".repeat(44), "A".repeat(43) + " "]) expect(parseMac(s), s).toBeNull();
    const key = await deriveSigningKey(newSecret());
    await expect(importSigningKey(key.slice(0, 40))).rejects.toThrow(/32 bytes/);
    for (const other of respellings(key)) await expect(importSigningKey(other), other).rejects.toThrow(/32 bytes/);
  });
});
