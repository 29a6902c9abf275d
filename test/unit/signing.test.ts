import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { createHmac } from "node:crypto";
import {
  HEADER_AGENT,
  HEADER_SIG,
  HEADER_TS,
  HEADER_UPLINK,
  deriveSigningKey,
  importSigningKey,
  newSecret,
  parseMac,
  sign,
  toBase64Url,
  verify,
} from "#shared";
import { lenientBytes, respellings } from "../respell.ts";

describe("message signing", () => {
  it("verifies what was signed and nothing else", async () => {
    const key = await importSigningKey(await deriveSigningKey(newSecret()));
    const parts = { direction: "up" as const, site: "office", agent: "srv1", ts: 1_700_000_000_000, body: '{"a":1}' };
    const sig = await sign(key, parts);
    expect(await verify(key, parts, sig)).toBe(true);
    for (const change of [
      { direction: "down" as const },
      { site: "other" },
      { agent: "srv2" },
      { ts: parts.ts + 1 },
      { body: '{"a":2}' },
    ])
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
      for (const other of respellings(sig))
        expect(await verify(key, { ...parts, ts: parts.ts + i }, other), other).toBe(false);
    }
  });

  it("refuses text that is no base64url at all, and a key of the wrong length", async () => {
    for (const s of ["", "A", "AAAAA", "not base64!", "A".repeat(42), "A".repeat(44), `${"A".repeat(43)} `])
      expect(parseMac(s), s).toBeNull();
    const key = await deriveSigningKey(newSecret());
    await expect(importSigningKey(key.slice(0, 40))).rejects.toThrow(/32 bytes/);
    for (const other of respellings(key)) await expect(importSigningKey(other), other).rejects.toThrow(/32 bytes/);
  });
});

describe("the signing format, against an independent implementation", () => {
  it('derives the edge\'s key as HMAC-SHA256(secret, "wanwatch signing key v1"), and signs the documented input', async () => {
    const secret = "a-fixed-secret-for-a-known-answer";
    const b64url = (b: Buffer) => b.toString("base64url");
    const derived = createHmac("sha256", secret).update("wanwatch signing key v1").digest();
    expect(await deriveSigningKey(secret)).toBe(b64url(derived));
    const key = await importSigningKey(b64url(derived));
    // Not extractable: a key in memory cannot be exported, only used.
    expect(key.extractable).toBe(false);
    const parts = { direction: "up" as const, site: "office", agent: "sbc1", ts: 1_700_000_000_000, body: "{}" };
    expect(await sign(key, parts)).toBe(
      b64url(createHmac("sha256", derived).update("wanwatch-v1\nup\noffice\nsbc1\n1700000000000\n{}").digest()),
    );
  });

  it("spells bytes in unpadded base64url", () => {
    for (const n of [0, 1, 2, 3, 31, 32, 33]) {
      const bytes = Uint8Array.from({ length: n }, (_, i) => (i * 97 + 251) % 256);
      expect(toBase64Url(bytes)).toBe(Buffer.from(bytes).toString("base64url"));
    }
  });

  it("names the wire headers as agents in the field send them", () => {
    expect([HEADER_AGENT, HEADER_TS, HEADER_SIG, HEADER_UPLINK]).toEqual([
      "x-wanwatch-agent",
      "x-wanwatch-ts",
      "x-wanwatch-sig",
      "x-wanwatch-uplink",
    ]);
  });
});
