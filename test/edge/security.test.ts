// The threat model's claims (docs/security.md), each against the real Worker and Durable Objects
// in workerd: what someone without the right token or key cannot do. Claims already proven
// elsewhere are cited in the doc, not repeated here.
import { runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env, exports } from "cloudflare:workers";
import { afterEach, describe, expect, it, vi } from "vitest";
import { HEADER_AGENT, HEADER_SIG, HEADER_TS, HEADER_UPLINK, deriveSigningKey, sign } from "#shared";
import type { Env } from "../../worker/src/env.ts";
import { respellings } from "../respell.ts";
import app from "../../worker/src/http/app.ts";
import { MAX_VIEWERS } from "../../worker/src/site/viewers.ts";
import {
  ADMIN,
  BASE,
  Channel,
  TestAgent,
  VIEWER,
  call,
  createSite,
  edgeClock,
  status,
  stubFor,
  twoUplinks,
} from "./support.ts";

// A frozen clock in the future: the sites' alarms never fire during a test, so every SQLite
// write counted below is one a request caused.
const at = edgeClock(Date.UTC(2031, 0, 6, 12, 0, 0));
afterEach(() => vi.restoreAllMocks());

/** Row changes on the site's SQLite connection so far. */
const changes = (site: string) =>
  runInDurableObject(
    stubFor(site),
    (_i, state) => state.storage.sql.exec<{ n: number }>("SELECT total_changes() AS n").one().n,
  );

/** The same Worker (routes, Durable Objects) with some vars or secrets changed: the test config has one set. */
const withEnv =
  (vars: Partial<Env>) =>
  (path: string, init: RequestInit = {}) =>
    app.fetch(new Request(`${BASE}${path}`, init), { ...(env as unknown as Env), ...vars });

async function sessionCookie(token: string): Promise<string> {
  const res = await exports.default.fetch(
    new Request(`${BASE}/login`, {
      method: "POST",
      redirect: "manual",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ token, next: "/" }).toString(),
    }),
  );
  return (res.headers.get("set-cookie") ?? "").split(";")[0]!;
}

const heartbeatHeaders = (agent: string, ts: number, sig: string) => ({
  "content-type": "application/json",
  [HEADER_AGENT]: agent,
  [HEADER_TS]: String(ts),
  [HEADER_SIG]: sig,
});

const connect = (site: string, agent: string, uplink: string, ts: number, sig: string) =>
  exports.default.fetch(
    new Request(`${BASE}/v1/sites/${site}/agents/${agent}/connect`, {
      headers: { upgrade: "websocket", [HEADER_UPLINK]: uplink, [HEADER_TS]: String(ts), [HEADER_SIG]: sig },
    }),
  );

const writes = (site: string) =>
  [
    ["PUT", `/v1/sites/${site}`, twoUplinks({ downAfterMs: 60_000 })],
    ["POST", `/v1/sites/${site}/agents`, { id: "intruder", role: "server" }],
    ["DELETE", `/v1/sites/${site}/agents/sbc1`, undefined],
    ["POST", `/v1/sites/${site}/override`, { uplink: "isp1", forSeconds: 60, reason: "mine now" }],
    ["DELETE", `/v1/sites/${site}/override`, undefined],
  ] as const;

describe("an outsider, or a viewer", () => {
  it("cannot configure, enrol, revoke or override with any credential but the admin token, and nothing is written", async () => {
    await createSite("sec-guard");
    const sbc1 = await TestAgent.enroll("sec-guard", "sbc1", "probe", { uplink: "isp1" });
    await call("POST", "/v1/sites/sec-guard/override", { uplink: "isp2", forSeconds: 600, reason: "maintenance" });
    const credentials: [string, string | null, Record<string, string>][] = [
      ["no token", null, {}],
      ["a wrong token", "wrong-token-0123456789", {}],
      ["the viewer token", VIEWER, {}],
      ["an agent's secret", sbc1.secret, {}],
      ["a viewer session", null, { cookie: await sessionCookie(VIEWER) }],
      ["a session signed in with the admin token", null, { cookie: await sessionCookie(ADMIN) }],
    ];
    const config = (await call("GET", "/v1/sites/sec-guard")).json;
    const state = await status("sec-guard");
    const before = await changes("sec-guard");
    for (const [who, token, headers] of credentials)
      for (const [method, path, body] of writes("sec-guard")) {
        const r = await call(method, path, body, token, headers);
        expect([401, 403], `${method} ${path} with ${who}`).toContain(r.status);
      }
    expect(await changes("sec-guard")).toBe(before);
    expect((await call("GET", "/v1/sites/sec-guard")).json).toEqual(config);
    expect(await status("sec-guard")).toEqual(state);
  });

  it("cannot pass a token in the query string", async () => {
    await createSite("sec-query");
    for (const name of ["token", "access_token", "auth", "authorization", "bearer"]) {
      expect((await call("GET", `/v1/sites/sec-query?${name}=${ADMIN}`, undefined, null)).status, name).toBe(401);
      expect(
        (
          await call(
            "GET",
            `/v1/sites/sec-query/status?${name}=${encodeURIComponent(`Bearer ${VIEWER}`)}`,
            undefined,
            null,
          )
        ).status,
        name,
      ).toBe(401);
    }
    const page = await exports.default.fetch(
      new Request(`${BASE}/sites/sec-query?token=${VIEWER}`, { redirect: "manual" }),
    );
    expect(page.status).toBe(303);
  });

  it("cannot use an agent's secret as a token: no read, no session", async () => {
    await createSite("sec-secret");
    const sbc1 = await TestAgent.enroll("sec-secret", "sbc1", "probe", { uplink: "isp1" });
    expect((await call("GET", "/v1/sites/sec-secret/status", undefined, sbc1.secret)).status).toBe(403);
    expect(await sessionCookie(sbc1.secret)).toBe("");
  });

  it("with PUBLIC_STATUS reads status, events, metrics, the list, the pages and the live socket, and still changes nothing", async () => {
    await createSite("sec-public");
    await TestAgent.enroll("sec-public", "sbc1", "probe", { uplink: "isp1" });
    const pub = withEnv({ PUBLIC_STATUS: "true" });
    for (const path of [
      "/v1/sites/sec-public/status",
      "/v1/sites/sec-public/events",
      "/v1/sites/sec-public/metrics",
      "/v1/sites",
      "/sites/sec-public",
      "/",
    ])
      expect((await pub(path)).status, path).toBe(200);
    const live = await pub("/v1/sites/sec-public/live", { headers: { upgrade: "websocket" } });
    expect(live.status).toBe(101);
    live.webSocket!.accept();
    live.webSocket!.close();
    expect(
      (await pub("/v1/sites/sec-public/live", { headers: { upgrade: "websocket", origin: "https://evil.example" } }))
        .status,
    ).toBe(403);
    // The config holds the notification URLs: it stays the admin's.
    expect((await pub("/v1/sites/sec-public")).status).toBe(401);
    expect(
      (await pub("/v1/sites/sec-public/status", { headers: { authorization: "Bearer wrong-token" } })).status,
    ).toBe(403);
    const before = await changes("sec-public");
    for (const [method, path, body] of writes("sec-public")) {
      const r = await pub(path, {
        method,
        headers: { "content-type": "application/json" },
        body: body && JSON.stringify(body),
      });
      expect(r.status, `${method} ${path}`).toBe(401);
    }
    expect(await changes("sec-public")).toBe(before);
  });

  it("cannot administer an edge that has no ADMIN_TOKEN: 503 whatever is sent", async () => {
    await createSite("sec-bare");
    const bare = withEnv({ ADMIN_TOKEN: undefined });
    for (const authorization of ["", "Bearer ", "Bearer undefined", `Bearer ${ADMIN}`, `Bearer ${VIEWER}`]) {
      const r = await bare("/v1/sites/sec-bare/override", {
        method: "POST",
        headers: { authorization, "content-type": "application/json" },
        body: JSON.stringify({ uplink: "isp2", forSeconds: 60, reason: "x" }),
      });
      expect(r.status, authorization).toBe(503);
    }
  });
});

describe("token rotation", () => {
  it.each(["ADMIN_TOKEN", "VIEWER_TOKEN"] as const)(
    "a new %s signs out every session and the old token, and agents keep speaking",
    async (name) => {
      const site = `sec-rotate-${name === "ADMIN_TOKEN" ? "admin" : "viewer"}`;
      await createSite(site);
      const sbc1 = await TestAgent.enroll(site, "sbc1", "probe", { uplink: "isp1" });
      const cookie = await sessionCookie(VIEWER);
      const old = name === "ADMIN_TOKEN" ? ADMIN : VIEWER;
      const rotated = withEnv({ [name]: "rotated-token-9876543210-abcdef" });
      expect((await rotated(`/v1/sites/${site}/status`, { headers: { cookie } })).status).toBe(401);
      expect((await rotated(`/v1/sites/${site}/status`, { headers: { authorization: `Bearer ${old}` } })).status).toBe(
        403,
      );
      expect(
        (
          await rotated(`/v1/sites/${site}/status`, {
            headers: { authorization: "Bearer rotated-token-9876543210-abcdef" },
          })
        ).status,
      ).toBe(200);
      const body = sbc1.heartbeatBody("isp1");
      const s = await sbc1.signed(body);
      expect(
        (
          await rotated(`/v1/sites/${site}/heartbeat`, {
            method: "POST",
            headers: heartbeatHeaders("sbc1", s.ts, s.sig),
            body,
          })
        ).status,
      ).toBe(200);
    },
  );
});

describe("agent signatures", () => {
  async function site(name: string) {
    await createSite(name);
    return [
      await TestAgent.enroll(name, "sbc1", "probe", { uplink: "isp1" }),
      await TestAgent.enroll(name, "sbc2", "probe", { uplink: "isp2" }),
    ] as const;
  }

  it("refuses a signature made for another timestamp", async () => {
    const [sbc1] = await site("sec-ts");
    const body = sbc1.heartbeatBody("isp1");
    const r = await sbc1.postRaw(body, { ts: Date.now(), sig: (await sbc1.signed(body, Date.now() - 1_000)).sig });
    expect(r.status).toBe(401);
    expect(r.json.error.code).toBe("bad_signature");
  });

  it("refuses one agent speaking as another agent of its site", async () => {
    const [sbc1, sbc2] = await site("sec-as");
    const body = sbc2.heartbeatBody("isp2");
    const ts = Date.now();
    const sig = await sign(sbc1.key, { direction: "up", site: "sec-as", agent: "sbc2", ts, body });
    const r = await call("POST", "/v1/sites/sec-as/heartbeat", body, null, heartbeatHeaders("sbc2", ts, sig));
    expect(r.status).toBe(401);
    expect(r.json.error.code).toBe("bad_signature");
    expect((await status("sec-as")).uplinks.find((u) => u.id === "isp2")!.state).toBe("unknown");
  });

  it("refuses an edge → agent signature as an agent → edge one", async () => {
    const [sbc1] = await site("sec-down");
    const answer = await sbc1.postRaw(sbc1.heartbeatBody("isp1"));
    expect(answer.status).toBe(200);
    // The edge's own signed answer, sent back to it.
    const reflected = await call(
      "POST",
      "/v1/sites/sec-down/heartbeat",
      answer.text,
      null,
      heartbeatHeaders("sbc1", Number(answer.headers.get(HEADER_TS)), answer.headers.get(HEADER_SIG)!),
    );
    expect(reflected.json.error.code).toBe("bad_signature");
    // A well-formed heartbeat signed the way only the edge signs.
    const body = sbc1.heartbeatBody("isp1");
    const ts = Date.now();
    const down = await sign(sbc1.key, { direction: "down", site: "sec-down", agent: "sbc1", ts, body });
    const r = await sbc1.postRaw(body, { ts, sig: down });
    expect(r.status).toBe(401);
    expect(r.json.error.code).toBe("bad_signature");
  });

  it("refuses a channel signed by site A's agent at site B, which has an agent of the same id", async () => {
    const [a] = await site("sec-ws-a");
    await site("sec-ws-b");
    const s = await a.signed("connect isp1");
    const res = await connect("sec-ws-b", "sbc1", "isp1", s.ts, s.sig);
    expect(res.status).toBe(401);
    expect(((await res.json()) as any).error.code).toBe("bad_signature");
  });

  it("refuses a replayed channel upgrade", async () => {
    const [sbc1] = await site("sec-ws-replay");
    const s = await sbc1.signed("connect isp1");
    const first = await connect("sec-ws-replay", "sbc1", "isp1", s.ts, s.sig);
    expect(first.status).toBe(101);
    first.webSocket!.accept();
    const again = await connect("sec-ws-replay", "sbc1", "isp1", s.ts, s.sig);
    expect(again.status).toBe(409);
    expect(((await again.json()) as any).error.code).toBe("replayed");
    first.webSocket!.close();
  });

  it("refuses a replayed WebSocket frame, whether first accepted on the channel or over HTTP", async () => {
    const [sbc1] = await site("sec-frame-replay");
    const ch = new Channel((await sbc1.connect("isp1")).webSocket!, sbc1);
    const replayed = () => ch.messages.filter((m) => m.type === "error" && m.error.code === "replayed").length;
    const body = sbc1.heartbeatBody("isp1");
    const frame = JSON.stringify({ ...(await sbc1.signed(body)), body });
    await ch.sendRaw(frame);
    await ch.until(
      () => ch.messages.find((m) => m.type === "directive" && m.ackSeq === JSON.parse(body).seq),
      "the answer",
    );
    await ch.sendRaw(frame);
    await ch.until(() => replayed() === 1, "the refusal");
    const overHttp = sbc1.heartbeatBody("isp1");
    const s = await sbc1.signed(overHttp);
    expect((await sbc1.postRaw(overHttp, s)).status).toBe(200);
    await ch.sendRaw(JSON.stringify({ ...s, body: overHttp }));
    await ch.until(() => replayed() === 2, "the refusal of the HTTP heartbeat");
    expect(ch.closed).toBeNull();
    ch.ws.close();
  });
});

describe("a respelled signature (the same MAC, another spelling)", () => {
  const site = async (name: string) => {
    await createSite(name);
    return TestAgent.enroll(name, "sbc1", "probe", { uplink: "isp1" });
  };

  it("replays no HTTP heartbeat", async () => {
    const sbc1 = await site("sec-respell-http");
    const body = sbc1.heartbeatBody("isp1");
    const s = await sbc1.signed(body);
    const before = await status("sec-respell-http");
    for (const sig of respellings(s.sig)) {
      const r = await sbc1.postRaw(body, { ts: s.ts, sig });
      expect(r.status, sig).toBe(401);
      expect(r.json.error.code, sig).toBe("bad_signature");
    }
    expect({ ...(await status("sec-respell-http")), now: 0 }).toEqual({ ...before, now: 0 });
    expect((await sbc1.postRaw(body, s)).status).toBe(200);
    for (const sig of respellings(s.sig)) expect((await sbc1.postRaw(body, { ts: s.ts, sig })).status, sig).toBe(401);
  });

  it("replays no channel frame", async () => {
    const sbc1 = await site("sec-respell-frame");
    const ch = new Channel((await sbc1.connect("isp1")).webSocket!, sbc1);
    const refused = () => ch.messages.filter((m) => m.type === "error" && m.error.code === "bad_signature").length;
    const body = sbc1.heartbeatBody("isp1");
    const answers = () => ch.messages.filter((m) => m.type === "directive" && m.ackSeq === JSON.parse(body).seq).length;
    const s = await sbc1.signed(body);
    await ch.sendRaw(JSON.stringify({ ...s, body }));
    await ch.until(() => answers() === 1, "the answer");
    const others = respellings(s.sig);
    for (const sig of others) await ch.sendRaw(JSON.stringify({ ts: s.ts, sig, body }));
    await ch.until(() => refused() === others.length, "a refusal of each respelling");
    expect(answers()).toBe(1);
    expect(ch.closed).toBeNull();
    ch.ws.close();
  });

  it("replays nothing by respelling the rest of a message: its timestamp, its site's path, a repeated header", async () => {
    const sbc1 = await site("sec-respell-rest");
    const body = sbc1.heartbeatBody("isp1");
    const s = await sbc1.signed(body);
    const post = (path: string, headers: [string, string][]) =>
      exports.default.fetch(new Request(`${BASE}${path}`, { method: "POST", headers, body }));
    const headers = (ts: string, sig = s.sig): [string, string][] => [
      ["content-type", "application/json"],
      [HEADER_AGENT, "sbc1"],
      [HEADER_TS, ts],
      [HEADER_SIG, sig],
    ];
    expect((await post("/v1/sites/sec-respell-rest/heartbeat", headers(String(s.ts)))).status).toBe(200);
    const again: [string, Response][] = [
      ["a timestamp with a leading zero", await post("/v1/sites/sec-respell-rest/heartbeat", headers(`0${s.ts}`))],
      ["a timestamp with a fraction", await post("/v1/sites/sec-respell-rest/heartbeat", headers(`${s.ts}.0`))],
      ["a timestamp in hex", await post("/v1/sites/sec-respell-rest/heartbeat", headers(`0x${s.ts.toString(16)}`))],
      ["the site percent-encoded", await post("/v1/sites/sec-respell-%72est/heartbeat", headers(String(s.ts)))],
      [
        "the signature header twice",
        await post("/v1/sites/sec-respell-rest/heartbeat", [...headers(String(s.ts)), [HEADER_SIG, s.sig]]),
      ],
    ];
    for (const [what, r] of again) expect([401, 409], what).toContain(r.status);
  });

  it("opens no channel and leaves the agent's real channel open", async () => {
    const sbc1 = await site("sec-respell-upgrade");
    const s = await sbc1.signed("connect isp1");
    const real = await connect("sec-respell-upgrade", "sbc1", "isp1", s.ts, s.sig);
    expect(real.status).toBe(101);
    const ch = new Channel(real.webSocket!, sbc1);
    for (const sig of respellings(s.sig)) {
      const r = await connect("sec-respell-upgrade", "sbc1", "isp1", s.ts, sig);
      expect(r.status, sig).toBe(401);
      expect(((await r.json()) as any).error.code, sig).toBe("bad_signature");
    }
    await ch.send("isp1");
    await ch.until(() => ch.messages.some((m) => m.type === "directive"), "an answer on the real channel");
    expect(ch.closed).toBeNull();
    ch.ws.close();
  });
});

describe("secrets", () => {
  it("no refusal, no viewer's answer and no log line holds a token, an agent's secret or key, or a notification URL's path", async () => {
    const logged: string[] = [];
    for (const m of ["log", "info", "warn", "error", "debug"] as const)
      vi.spyOn(console, m).mockImplementation(
        (...args: unknown[]) =>
          void logged.push(args.map((a) => (typeof a === "string" ? a : JSON.stringify(a))).join(" ")),
      );
    await createSite(
      "sec-leak",
      twoUplinks(
        {},
        { notify: [{ kind: "webhook", url: "https://hooks.example.com/services/T0/B0/hook-secret-4f9a" }] },
      ),
    );
    const sbc1 = await TestAgent.enroll("sec-leak", "sbc1", "probe", { uplink: "isp1" });
    const key = await deriveSigningKey(sbc1.secret);
    await sbc1.beat("isp1");
    const guess = "guess-0123456789abcdef";
    const secrets = [ADMIN, VIEWER, guess, sbc1.secret, key];

    const body = sbc1.heartbeatBody("isp1");
    const refused = [
      await call("PUT", "/v1/sites/sec-leak", twoUplinks(), guess),
      await call("GET", "/v1/sites/sec-leak", undefined, VIEWER),
      await call("GET", "/v1/sites/sec-leak/status", undefined, guess),
      await call("POST", "/v1/sites/sec-leak/agents", { id: "x", role: "server" }, sbc1.secret),
      await sbc1.postRaw(body, { sig: sbc1.secret }),
      await call("POST", "/v1/sites/sec-leak/heartbeat", body, null, heartbeatHeaders("sbc1", Date.now(), key)),
    ].map((r) => r.text);
    refused.push(await (await connect("sec-leak", "sbc1", "isp1", Date.now(), key)).text());
    const login = await exports.default.fetch(
      new Request(`${BASE}/login`, {
        method: "POST",
        headers: { "content-type": "application/x-www-form-urlencoded" },
        body: `token=${guess}&next=%2F`,
      }),
    );
    refused.push(await login.text());
    for (const text of refused) for (const s of secrets) expect(text).not.toContain(s);

    const viewed = await Promise.all(
      [
        "/v1/sites/sec-leak/status",
        "/v1/sites/sec-leak/events?limit=1000",
        "/v1/sites/sec-leak/metrics",
        "/v1/sites",
      ].map(async (p) => (await call("GET", p, undefined, VIEWER)).text),
    );
    const live = (
      await exports.default.fetch(
        new Request(`${BASE}/v1/sites/sec-leak/live`, {
          headers: { upgrade: "websocket", authorization: `Bearer ${VIEWER}` },
        }),
      )
    ).webSocket!;
    const snapshot = new Promise<string>((resolve) =>
      live.addEventListener("message", (e) => resolve(e.data as string)),
    );
    live.accept();
    viewed.push(await snapshot);
    live.close();
    for (const text of viewed) for (const s of [...secrets, "hook-secret-4f9a"]) expect(text).not.toContain(s);

    // The Worker's two log lines, made to happen. An unhandled error, on a request holding the
    // admin token and an agent's signature (a namespace without methods: what a bad deploy gives)…
    const broken = withEnv({ SITES: {} as Env["SITES"] });
    expect((await broken("/v1/sites/sec-leak/status", { headers: { authorization: `Bearer ${ADMIN}` } })).status).toBe(
      500,
    );
    expect(
      (
        await broken("/v1/sites/sec-leak/heartbeat", {
          method: "POST",
          headers: heartbeatHeaders("sbc1", Date.now(), key),
          body,
        })
      ).status,
    ).toBe(500);
    // …and a failing alarm: its storage broken under it, the site's uplinks judged 10 s later.
    await runInDurableObject(stubFor("sec-leak"), (_i, state) => void state.storage.sql.exec("DROP TABLE events"));
    at(10_000);
    expect(await runDurableObjectAlarm(stubFor("sec-leak"))).toBe(true);
    expect(logged.filter((l) => l.includes('"msg":"unhandled error"'))).toHaveLength(2);
    expect(logged.filter((l) => l.includes('"msg":"alarm failed"'))).toHaveLength(1);
    for (const s of [...secrets, "hook-secret-4f9a"]) expect(logged.join("\n")).not.toContain(s);
  });
});

describe("browsers", () => {
  it("never caches a page, the login form or a redirect to it", async () => {
    await createSite("sec-cache");
    const cookie = await sessionCookie(VIEWER);
    const get = (path: string, headers: Record<string, string> = {}) =>
      exports.default.fetch(new Request(`${BASE}${path}`, { redirect: "manual", headers }));
    for (const res of [
      await get("/login"),
      await get("/sites/sec-cache"),
      await get("/sites/sec-cache", { cookie }),
      await get("/", { cookie }),
    ])
      expect(res.headers.get("cache-control"), `${res.status}`).toBe("no-store");
    const signIn = await exports.default.fetch(
      new Request(`${BASE}/login`, {
        method: "POST",
        redirect: "manual",
        headers: { "content-type": "application/x-www-form-urlencoded" },
        body: `token=${VIEWER}&next=%2F`,
      }),
    );
    expect(signIn.status).toBe(303);
    expect(signIn.headers.get("cache-control")).toBe("no-store");
  });
});

describe("memory bounds", () => {
  /** A body that never ends, 1 KiB per pull, counting the pulls. */
  function endless() {
    let pulled = 0;
    const stream = new ReadableStream<Uint8Array>(
      { pull: (c) => void (pulled++, c.enqueue(new Uint8Array(1_024).fill(0x20))) },
      { highWaterMark: 0 },
    );
    return { stream, read: () => pulled * 1_024 };
  }

  it.each([
    [
      "the admin API",
      "PUT",
      "/v1/sites/sec-big",
      { authorization: `Bearer ${ADMIN}`, "content-type": "application/json" },
      64 * 1_024,
    ],
    [
      "the heartbeat",
      "POST",
      "/v1/sites/sec-big/heartbeat",
      heartbeatHeaders("sbc1", Date.now(), "A".repeat(43)),
      8 * 1_024,
    ],
    ["the login form", "POST", "/login", { "content-type": "application/x-www-form-urlencoded" }, 4 * 1_024],
  ])(
    "%s answers an endless body with 413 after reading just past its cap, whether Content-Length lies or is absent",
    async (_what, method, path, headers, cap) => {
      for (const length of [{ "content-length": "100" }, {}]) {
        const body = endless();
        const res = await exports.default.fetch(
          new Request(`${BASE}${path}`, {
            method,
            headers: { ...headers, ...length },
            body: body.stream,
            duplex: "half",
          } as RequestInit),
        );
        expect(res.status).toBe(413);
        expect(((await res.json()) as any).error.code).toBe("payload_too_large");
        expect(body.read()).toBeGreaterThan(cap);
        expect(body.read()).toBeLessThanOrEqual(cap + 2 * 1_024);
      }
      expect((await call("GET", "/v1/sites/sec-big")).status).toBe(404);
    },
  );

  it(`a site takes at most ${MAX_VIEWERS} live status pages; the next gets 429`, async () => {
    await createSite("sec-viewers");
    const open = () =>
      exports.default.fetch(
        new Request(`${BASE}/v1/sites/sec-viewers/live`, {
          headers: { upgrade: "websocket", authorization: `Bearer ${VIEWER}` },
        }),
      );
    const sockets: WebSocket[] = [];
    for (let i = 0; i < MAX_VIEWERS; i++) {
      const res = await open();
      expect(res.status).toBe(101);
      res.webSocket!.accept();
      sockets.push(res.webSocket!);
    }
    const over = await open();
    expect(over.status).toBe(429);
    expect(((await over.json()) as any).error.code).toBe("too_many_viewers");
    for (const ws of sockets) ws.close();
  });
});
