import { exports } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { LiveMessage } from "#shared";
import { ADMIN, BASE, TestAgent, VIEWER, call, createSite } from "./support.ts";

const form = (fields: Record<string, string>, headers: Record<string, string> = {}) =>
  exports.default.fetch(
    new Request(`${BASE}/login`, {
      method: "POST",
      redirect: "manual",
      headers: { "content-type": "application/x-www-form-urlencoded", ...headers },
      body: new URLSearchParams(fields).toString(),
    }),
  );

const get = (path: string, headers: Record<string, string> = {}) =>
  exports.default.fetch(new Request(`${BASE}${path}`, { redirect: "manual", headers }));

async function login(token = VIEWER, next = "/") {
  const res = await form({ token, next });
  const cookie = res.headers.get("set-cookie") ?? "";
  return { res, cookie, jar: cookie.split(";")[0]! };
}

async function sha256(text: string) {
  const d = new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text)));
  return `'sha256-${btoa(String.fromCharCode(...d))}'`;
}

/** A status page's live socket, collecting what the edge pushes. */
async function live(site: string, headers: Record<string, string> = { authorization: `Bearer ${VIEWER}` }) {
  const res = await exports.default.fetch(
    new Request(`${BASE}/v1/sites/${site}/live`, { headers: { upgrade: "websocket", ...headers } }),
  );
  if (!res.webSocket) return { res, messages: [] as LiveMessage[], ws: null, until: null };
  const ws = res.webSocket;
  ws.accept();
  const messages: LiveMessage[] = [];
  ws.addEventListener("message", (e) => void messages.push(LiveMessage.parse(JSON.parse(e.data as string))));
  const until = async <T>(pick: () => T | undefined | false, what: string) => {
    for (let i = 0; i < 100; i++) {
      const v = pick();
      if (v) return v;
      await new Promise((r) => setTimeout(r, 20));
    }
    throw new Error(`timed out waiting for ${what}: ${JSON.stringify(messages).slice(0, 500)}`);
  };
  return { res, messages, ws, until };
}

describe("login", () => {
  it("sends a signed-out visitor to the login form and back, with the token only in a POST body", async () => {
    await createSite("page-login");
    const res = await get("/sites/page-login");
    expect(res.status).toBe(303);
    expect(res.headers.get("location")).toBe("/login?next=%2Fsites%2Fpage-login");
    expect((await get("/")).headers.get("location")).toBe("/login?next=%2F");

    const wrong = await form({ token: "not-the-token", next: "/sites/page-login" });
    expect(wrong.status).toBe(401);
    expect(wrong.headers.get("set-cookie")).toBeNull();
    expect(await wrong.text()).toContain("not this edge&#39;s viewer or admin token");

    const { res: ok, cookie, jar } = await login(VIEWER, "/sites/page-login");
    expect(ok.status).toBe(303);
    expect(ok.headers.get("location")).toBe("/sites/page-login");
    expect(cookie).toMatch(
      /^wanwatch_session=v1\.\d+\.[\w-]{43}; Path=\/; Max-Age=604800; HttpOnly; SameSite=Strict; Secure$/,
    );
    expect(cookie).not.toContain(VIEWER);

    const pageRes = await get("/sites/page-login", { cookie: jar });
    expect(pageRes.status).toBe(200);
    expect(pageRes.headers.get("content-type")).toContain("text/html");
    expect((await call("GET", "/v1/sites/page-login/status", undefined, null, { cookie: jar })).status).toBe(200);
    // The cookie reads; it never administers.
    expect((await call("GET", "/v1/sites/page-login", undefined, null, { cookie: jar })).status).toBe(401);
    expect(
      (
        await call("POST", "/v1/sites/page-login/override", { uplink: "isp2", forSeconds: 60, reason: "x" }, null, {
          cookie: jar,
        })
      ).status,
    ).toBe(401);
  });

  it("refuses forged, tampered and expired-looking cookies, foreign origins and open redirects", async () => {
    await createSite("page-forged");
    const { jar } = await login(ADMIN);
    const [name, value] = jar.split("=") as [string, string];
    const [v, exp, mac] = value.split(".") as [string, string, string];
    const tampered = [
      `${name}=${v}.${Number(exp) + 1}.${mac}`,
      `${name}=${v}.${exp}.${mac.slice(0, -1)}${mac.endsWith("A") ? "B" : "A"}`,
      `${name}=${v}.1.${mac}`,
      `${name}=garbage`,
    ];
    for (const cookie of tampered)
      expect((await call("GET", "/v1/sites/page-forged/status", undefined, null, { cookie })).status).toBe(401);

    expect((await form({ token: VIEWER, next: "/" }, { origin: "https://evil.example" })).status).toBe(403);
    for (const next of ["//evil.example/x", "/\\evil.example", "https://evil.example", "javascript:alert(1)"]) {
      const { res } = await login(VIEWER, next);
      expect(res.headers.get("location")).toBe("/");
    }
    const shown = await (await get(`/login?next=${encodeURIComponent('/"><script>alert(1)</script>')}`)).text();
    expect(shown).not.toContain("<script>alert(1)");
    expect(shown).toContain('name="next" value="/"');
  });

  it("signs out by clearing the cookie", async () => {
    const res = await exports.default.fetch(new Request(`${BASE}/logout`, { method: "POST", redirect: "manual" }));
    expect(res.status).toBe(303);
    expect(res.headers.get("location")).toBe("/login");
    expect(res.headers.get("set-cookie")).toMatch(/^wanwatch_session=; Path=\/; Max-Age=0; HttpOnly; SameSite=Strict/);
  });
});

describe("pages", () => {
  it("serves every page under a CSP that allows exactly its own inline script and style", async () => {
    await createSite("page-csp");
    const { jar } = await login();
    for (const path of ["/", "/sites/page-csp", "/login"]) {
      const res = await get(path, { cookie: jar });
      expect(res.status, path).toBe(200);
      const html = await res.text();
      const csp = res.headers.get("content-security-policy")!;
      expect(csp).toContain("default-src 'none'");
      expect(csp).toContain("frame-ancestors 'none'");
      expect(csp).not.toContain("unsafe");
      for (const [tag, directive] of [
        ["script", "script-src"],
        ["style", "style-src"],
      ] as const) {
        const blocks = [...html.matchAll(new RegExp(`<${tag}>([\\s\\S]*?)</${tag}>`, "g"))].map((m) => m[1]!);
        const allowed = csp.split("; ").find((d) => d.startsWith(directive))!;
        for (const b of blocks) expect(allowed, `${path} ${tag}`).toContain(await sha256(b));
      }
      expect(res.headers.get("x-content-type-options")).toBe("nosniff");
      expect(res.headers.get("x-frame-options")).toBe("DENY");
      expect(res.headers.get("referrer-policy")).toBe("same-origin");
      expect(html).not.toMatch(/<(script|link|img)[^>]+(src|href)=["']?https?:/);
    }
  });

  it("names a bad site id in the page's path", async () => {
    const { jar } = await login();
    const res = await get("/sites/Not_A_Site", { cookie: jar });
    expect(res.status).toBe(400);
    expect(((await res.json()) as any).error.issues[0].path).toBe("site");
  });

  it("lists sites with their state for viewers only", async () => {
    await createSite("page-list-a");
    await createSite("page-list-b");
    const agent = await TestAgent.enroll("page-list-a", "sbc1", "probe", { uplink: "isp1" });
    await agent.beat("isp1");
    expect((await call("GET", "/v1/sites", undefined, null)).status).toBe(401);
    const r = await call("GET", "/v1/sites", undefined, VIEWER);
    expect(r.status).toBe(200);
    const a = r.json.sites.find((s: any) => s.site === "page-list-a");
    expect(a).toMatchObject({ activeUplink: "isp1", mode: "auto", agents: 1, staleAgents: 0 });
    expect(a.uplinks.map((u: any) => [u.id, u.state])).toEqual([
      ["isp1", "up"],
      ["isp2", "unknown"],
    ]);
    expect(r.json.sites.some((s: any) => s.site === "page-list-b")).toBe(true);
    expect(r.json.total).toBe(r.json.sites.length);
  });
});

describe("live status", () => {
  it("sends a snapshot, then each recorded change and the state as heartbeats arrive", async () => {
    await createSite("page-live", undefined);
    const sbc1 = await TestAgent.enroll("page-live", "sbc1", "probe", { uplink: "isp1" });
    const v = await live("page-live");
    expect(v.res.status).toBe(101);
    const snap = await v.until!(() => v.messages.find((m) => m.type === "snapshot"), "snapshot");
    if (snap.type !== "snapshot") throw new Error("unreachable");
    expect(snap.status.site).toBe("page-live");
    expect(snap.events.map((e) => e.kind)).toEqual(["agent-enrolled", "config"]);
    expect(snap.availability.map((a) => a.uplink)).toEqual(["isp1", "isp2"]);

    await sbc1.beat("isp1");
    const update = await v.until!(
      () => v.messages.find((m) => m.type === "update" && m.events.some((e) => e.kind === "switch")),
      "switch update",
    );
    expect(update.status.activeUplink).toBe("isp1");
    expect(update.events.every((e) => e.seq > snap.events[0]!.seq)).toBe(true);

    v.ws!.send("refresh");
    await v.until!(() => v.messages.filter((m) => m.type === "update").length >= 2, "refresh answer");
    v.ws!.close();
  });

  it("needs viewer rights, this edge's origin, an upgrade and an existing site", async () => {
    await createSite("page-live-refuse");
    expect((await live("page-live-refuse", {})).res.status).toBe(401);
    expect((await live("page-live-refuse", { authorization: "Bearer wrong" })).res.status).toBe(403);
    expect(
      (await live("page-live-refuse", { authorization: `Bearer ${VIEWER}`, origin: "https://evil.example" })).res
        .status,
    ).toBe(403);
    expect((await live("page-live-nothing")).res.status).toBe(404);
    const plain = await call("GET", "/v1/sites/page-live-refuse/live", undefined, VIEWER);
    expect(plain.status).toBe(426);
    const { jar } = await login();
    const withCookie = await live("page-live-refuse", { cookie: jar, origin: BASE });
    expect(withCookie.res.status).toBe(101);
    withCookie.ws!.close();
  });
});
