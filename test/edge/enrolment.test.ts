import fc from "fast-check";
import { describe, expect, it, vi } from "vitest";
import { TestAgent, call, createSite, edgeClock, events, send, status, storedRows } from "./support.ts";
import { BASE } from "./support.ts";

const at = edgeClock(Date.UTC(2026, 0, 1));

async function token(site: string, body: Record<string, unknown>) {
  const r = await call("POST", `/v1/sites/${site}/enrolment-tokens`, body);
  if (r.status !== 201) throw new Error(`token: ${r.status} ${r.text}`);
  return r.json as { token: string; expiresAt: number; agent: string };
}

const redeem = (body: unknown) => call("POST", "/v1/enroll", body, null);

describe("enrolment tokens", () => {
  it("enrol the agent only when redeemed, once: the secret it returns signs heartbeats, a second use is refused", async () => {
    await createSite("tok");
    const t = await token("tok", { id: "sbc1", role: "probe", uplink: "isp1" });
    expect(t.token).toMatch(/^wwe1\.tok\.[A-Za-z0-9_-]{43}$/);
    expect(t.expiresAt).toBe(Date.now() + 3_600_000);
    expect((await status("tok")).agents).toEqual([]);

    const check = await redeem({ token: t.token, check: true });
    expect(check.status).toBe(200);
    expect(check.json).toEqual({
      site: "tok",
      agent: "sbc1",
      role: "probe",
      uplink: "isp1",
      tunnelRestarter: false,
      uplinks: ["isp1", "isp2"],
      expiresAt: t.expiresAt,
    });
    expect((await status("tok")).agents).toEqual([]);

    const r = await redeem({ token: t.token });
    expect(r.status).toBe(201);
    expect(r.json).toMatchObject({ site: "tok", agent: "sbc1", role: "probe", uplink: "isp1" });
    const agent = await TestAgent.withSecret("tok", "sbc1", r.json.secret);
    expect(await agent.beat("isp1")).toMatchObject({ activeUplink: "isp1" });

    const again = await redeem({ token: t.token });
    expect(again.status).toBe(409);
    expect(again.json.error.code).toBe("token_used");
    expect(again.json.error.message).toMatch(/already used at .* \(agent sbc1 is enrolled\): a token works once/);
    expect(again.text).not.toContain(r.json.secret);
    expect((await status("tok")).agents.map((a) => a.id)).toEqual(["sbc1"]);
    const kinds = (await events("tok"))
      .map((e) => e.kind)
      .filter((k) => k.startsWith("enrol") || k.startsWith("agent"));
    expect(kinds).toEqual([
      "enrolment-refused",
      "enrolment-token-redeemed",
      "agent-enrolled",
      "enrolment-token-created",
    ]);
  });

  it("expire by the edge's clock: refused after ttlSeconds, nothing enrolled", async () => {
    await createSite("tok-exp");
    const t = await token("tok-exp", { id: "srv1", role: "server", tunnelRestarter: true, ttlSeconds: 600 });
    at(599_999);
    expect((await redeem({ token: t.token, check: true })).status).toBe(200);
    at(600_000);
    const r = await redeem({ token: t.token });
    expect(r.status).toBe(410);
    expect(r.json.error).toMatchObject({ code: "token_expired" });
    expect(r.json.error.message).toContain("expired at 2026-01-01T00:10:00.000Z");
    expect((await status("tok-exp")).agents).toEqual([]);
  });

  it("of another site: refused by name, and a token edited to name another site is unknown there; nothing enrolled in either", async () => {
    await createSite("tok-a");
    await createSite("tok-b");
    const t = await token("tok-a", { id: "sbc1", role: "probe", uplink: "isp1" });
    const other = await redeem({ token: t.token, site: "tok-b" });
    expect(other.status).toBe(409);
    expect(other.json.error).toMatchObject({ code: "token_other_site" });
    expect(other.json.error.message).toBe('this enrolment token is for site "tok-a", not "tok-b": nothing enrolled');
    const edited = await redeem({ token: t.token.replace("wwe1.tok-a.", "wwe1.tok-b.") });
    expect(edited.status).toBe(404);
    expect(edited.json.error.code).toBe("token_unknown");
    expect((await status("tok-a")).agents).toEqual([]);
    expect((await status("tok-b")).agents).toEqual([]);
    // Still good for its own site.
    expect((await redeem({ token: t.token, site: "tok-a" })).status).toBe(201);
  });

  it("are created by the admin only, for an agent the site can take; the token itself is stored nowhere and logged nowhere", async () => {
    await createSite("tok-auth");
    const body = { id: "sbc1", role: "probe", uplink: "isp1" };
    expect((await call("POST", "/v1/sites/tok-auth/enrolment-tokens", body, null)).status).toBe(401);
    expect((await call("POST", "/v1/sites/tok-auth/enrolment-tokens", body, "wrong-token")).status).toBe(403);
    const bad = await call("POST", "/v1/sites/tok-auth/enrolment-tokens", { ...body, uplink: "isp9" });
    expect(bad.status).toBe(400);
    expect(bad.json.error.issues).toEqual([{ path: "uplink", message: 'no uplink "isp9" in the site config' }]);
    const ttl = await call("POST", "/v1/sites/tok-auth/enrolment-tokens", { ...body, ttlSeconds: 10 });
    expect(ttl.status).toBe(400);
    expect(ttl.json.error.issues[0].path).toBe("ttlSeconds");
    await TestAgent.enroll("tok-auth", "srv1", "server");
    const taken = await call("POST", "/v1/sites/tok-auth/enrolment-tokens", { id: "srv1", role: "server" });
    expect(taken.status).toBe(409);
    expect(taken.json.error.code).toBe("agent_exists");

    const logged = vi.spyOn(console, "log");
    const errors = vi.spyOn(console, "error");
    const t = await token("tok-auth", body);
    const r = await redeem({ token: t.token });
    const rows = JSON.stringify(await storedRows("tok-auth"));
    const timeline = JSON.stringify(await events("tok-auth"));
    const logs = JSON.stringify([...logged.mock.calls, ...errors.mock.calls]);
    for (const secret of [t.token, t.token.split(".")[2]!, r.json.secret]) {
      expect(rows).not.toContain(secret);
      expect(timeline).not.toContain(secret);
      expect(logs).not.toContain(secret);
    }
    logged.mockRestore();
    errors.mockRestore();
  });

  it("a newer token for the same agent replaces an unused older one", async () => {
    await createSite("tok-new");
    const old = await token("tok-new", { id: "sbc1", role: "probe", uplink: "isp1" });
    const fresh = await token("tok-new", { id: "sbc1", role: "probe", uplink: "isp1" });
    expect((await redeem({ token: old.token })).json.error.code).toBe("token_unknown");
    expect((await redeem({ token: fresh.token })).status).toBe(201);
    expect((await events("tok-new")).find((e) => e.kind === "enrolment-token-created")!.message).toContain(
      "it replaces the unused one issued before",
    );
  });

  it("bad redemptions: a malformed token names the field; failures are rate-limited per site (429 with retry-after), and recorded once", async () => {
    await createSite("tok-rate");
    const malformed = await redeem({ token: "not-a-token" });
    expect(malformed.status).toBe(400);
    expect(malformed.json.error).toMatchObject({ code: "token_malformed", issues: [{ path: "token" }] });
    const url = await send(new Request(`${BASE}/v1/enroll?token=wwe1.x.y`, { method: "POST" }));
    expect(url.status).toBe(415);
    const t = await token("tok-rate", { id: "sbc1", role: "probe", uplink: "isp1" });
    const guess = (i: number) => `wwe1.tok-rate.${String(i).padStart(43, "A")}`;
    for (let i = 0; i < 10; i++) expect((await redeem({ token: guess(i) })).status).toBe(404);
    const limited = await redeem({ token: t.token });
    expect(limited.status).toBe(429);
    expect(limited.headers.get("retry-after")).toBe("60");
    expect(limited.json.error.code).toBe("too_many_attempts");
    expect((await status("tok-rate")).agents).toEqual([]);
    at(60_000);
    expect((await redeem({ token: t.token })).status).toBe(201);
    const refused = (await events("tok-rate")).filter((e) => e.kind === "enrolment-refused");
    expect(refused.map((e) => e.data.code)).toEqual(["too_many_attempts"]);
  });

  it("any body sent to the public endpoint: a 4xx envelope naming the problem, never an enrolment", async () => {
    await createSite("tok-fuzz");
    const real = await token("tok-fuzz", { id: "sbc1", role: "probe", uplink: "isp1" });
    const tail = real.token.split(".")[2]!;
    const tokenish = fc.oneof(
      fc.string(),
      fc.stringMatching(/^[A-Za-z0-9_-]{43}$/).map((t) => `wwe1.tok-fuzz.${t}`),
      fc.constantFrom("tok-a", "nowhere").map((site) => `wwe1.${site}.${tail}`),
      fc.constant(`${real.token}x`),
      fc.constant(real.token.toUpperCase()),
    );
    const body = fc.oneof(
      fc.json(),
      fc.record({ token: tokenish, check: fc.option(fc.boolean(), { nil: undefined }) }),
      fc.record({ token: fc.constant(real.token), site: fc.constantFrom("tok-a", "x", "") }),
      fc.record({ token: tokenish, extra: fc.string() }),
    );
    let tries = 0;
    await fc.assert(
      fc.asyncProperty(body, async (b) => {
        tries++;
        const r = await redeem(typeof b === "string" ? b : JSON.stringify(b));
        expect(r.status).toBeGreaterThanOrEqual(400);
        expect(r.status).toBeLessThan(500);
        expect(typeof r.json.error.code).toBe("string");
        if (r.json.error.code === "validation_failed") expect(r.json.error.issues.length).toBeGreaterThan(0);
      }),
      { numRuns: 150 },
    );
    expect(tries).toBe(150);
    expect((await status("tok-fuzz")).agents).toEqual([]);
    at(60_000);
    expect((await redeem({ token: real.token })).status).toBe(201);
  });

  it("the edge serves the install script, told its own address and the bundle's SHA-256, and the bundle with that hash", async () => {
    const script = await send(new Request(`${BASE}/install.sh`));
    expect(script.status).toBe(200);
    expect(script.headers.get("content-type")).toContain("text/x-shellscript");
    expect(script.text).toContain(`EDGE="\${WANWATCH_EDGE:-${BASE}}"`);
    const sha = /BUNDLE_SHA256="([0-9a-f]{64})"/.exec(script.text)![1]!;
    const bundle = await exports_fetch(`${BASE}/agent/wanwatch.mjs`);
    const digest = await crypto.subtle.digest("SHA-256", bundle);
    expect([...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("")).toBe(sha);
    expect(new TextDecoder().decode(bundle.slice(0, 19))).toBe("#!/usr/bin/env node");
  });
});

async function exports_fetch(url: string): Promise<ArrayBuffer> {
  const { exports } = await import("cloudflare:workers");
  const res = await exports.default.fetch(new Request(url));
  expect(res.status).toBe(200);
  return res.arrayBuffer();
}
