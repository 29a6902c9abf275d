import { describe, expect, it } from "vitest";
import { ADMIN, VIEWER, call, createSite, events, twoUplinks } from "./support.ts";

describe("site config", () => {
  it("creates, returns and replaces a site config with defaults filled in", async () => {
    const put = await call("PUT", "/v1/sites/office", { uplinks: twoUplinks().uplinks });
    expect(put.status).toBe(200);
    expect(put.json.policy).toEqual({
      heartbeatMs: 1_000,
      downAfterMs: 3_000,
      failbackAfterMs: 60_000,
      minDwellMs: 10_000,
      degradedLossRatio: 0.2,
      degradedRttMs: 500,
      witnessQuorum: 2,
      meteredHeartbeatMs: 30_000,
      meteredCheckMs: 600_000,
    });
    expect(put.json.tunnels).toEqual({ restart: "cluster", maxWaitMs: 30_000 });
    const get = await call("GET", "/v1/sites/office");
    expect(get.json).toEqual(put.json);
    await createSite("office", twoUplinks({ downAfterMs: 5_000 }));
    expect((await call("GET", "/v1/sites/office")).json.policy.downAfterMs).toBe(5_000);
    expect((await events("office")).map((e) => e.message)).toEqual(["site config replaced", "site created"]);
  });

  it.each([
    ["malformed JSON", '{"uplinks": [', 400, "invalid_json", undefined],
    ["an unknown field", { ...twoUplinks(), colour: "blue" }, 400, "validation_failed", "colour"],
    ["one uplink", { uplinks: [{ id: "isp1", priority: 1 }] }, 400, "validation_failed", "uplinks"],
    [
      "duplicate priorities",
      {
        uplinks: [
          { id: "a", priority: 1 },
          { id: "b", priority: 1 },
        ],
      },
      400,
      "validation_failed",
      "uplinks[1].priority",
    ],
    [
      "duplicate ids",
      {
        uplinks: [
          { id: "a", priority: 1 },
          { id: "a", priority: 2 },
        ],
      },
      400,
      "validation_failed",
      "uplinks[1].id",
    ],
    [
      "a bad uplink id",
      {
        uplinks: [
          { id: "ISP 1", priority: 1 },
          { id: "b", priority: 2 },
        ],
      },
      400,
      "validation_failed",
      "uplinks[0].id",
    ],
    [
      "downAfterMs under 2 heartbeats",
      twoUplinks({ heartbeatMs: 2_000, downAfterMs: 3_000 }),
      400,
      "validation_failed",
      "policy.downAfterMs",
    ],
    ["a negative failback", twoUplinks({ failbackAfterMs: -1 }), 400, "validation_failed", "policy.failbackAfterMs"],
    [
      "a notify target that is not a URL",
      { ...twoUplinks(), notify: [{ kind: "webhook", url: "nope" }] },
      400,
      "validation_failed",
      "notify[0].url",
    ],
  ])("rejects %s with a 4xx naming the field, and keeps the old config", async (_what, body, status, code, path) => {
    await createSite("strict");
    const before = (await call("GET", "/v1/sites/strict")).json;
    const r = await call("PUT", "/v1/sites/strict", body);
    expect(r.status).toBe(status);
    expect(r.json.error.code).toBe(code);
    if (path) expect(r.json.error.issues.map((i: { path: string }) => i.path)).toContain(path);
    expect((await call("GET", "/v1/sites/strict")).json).toEqual(before);
  });

  it("rejects an oversize body with 413 and a non-JSON content type with 415", async () => {
    const big = JSON.stringify({ ...twoUplinks(), pad: "x".repeat(70 * 1024) });
    expect((await call("PUT", "/v1/sites/big", big)).status).toBe(413);
    const r = await call("PUT", "/v1/sites/big", JSON.stringify(twoUplinks()), ADMIN, { "content-type": "text/plain" });
    expect(r.status).toBe(415);
    expect((await call("GET", "/v1/sites/big")).status).toBe(404);
  });

  it("rejects a bad site id in the path, naming it", async () => {
    const r = await call("PUT", "/v1/sites/Bad_Site", twoUplinks());
    expect(r.status).toBe(400);
    expect(r.json.error.issues[0].path).toBe("site");
  });
});

describe("admin auth", () => {
  it("needs the admin token for every state change and for reading config", async () => {
    await createSite("guarded");
    for (const [method, path, body] of [
      ["PUT", "/v1/sites/guarded", twoUplinks()],
      ["GET", "/v1/sites/guarded", undefined],
      ["POST", "/v1/sites/guarded/agents", { id: "x", role: "server" }],
      ["DELETE", "/v1/sites/guarded/agents/x", undefined],
      ["POST", "/v1/sites/guarded/override", { uplink: "isp2", forSeconds: 60, reason: "r" }],
      ["DELETE", "/v1/sites/guarded/override", undefined],
    ] as const) {
      expect((await call(method, path, body, null)).status, `${method} ${path} without a token`).toBe(401);
      expect((await call(method, path, body, VIEWER)).status, `${method} ${path} with the viewer token`).toBe(403);
      expect((await call(method, path, body, "wrong-token")).status).toBe(403);
    }
    expect((await events("guarded")).length).toBe(1);
  });

  it("lets viewers read status, events and metrics, and nobody else", async () => {
    await createSite("viewed");
    for (const path of ["/v1/sites/viewed/status", "/v1/sites/viewed/events", "/v1/sites/viewed/metrics"]) {
      expect((await call("GET", path, undefined, VIEWER)).status).toBe(200);
      expect((await call("GET", path, undefined, null)).status).toBe(401);
    }
  });

  it("answers unknown paths and the health check", async () => {
    expect((await call("GET", "/healthz", undefined, null)).json).toEqual({ ok: true });
    const r = await call("GET", "/nope", undefined, null);
    expect(r.status).toBe(404);
    expect(r.json.error.code).toBe("not_found");
  });
});

describe("agents", () => {
  it("enrols with a secret shown once, refuses duplicates, and revokes", async () => {
    await createSite("enrol");
    const a = await call("POST", "/v1/sites/enrol/agents", { id: "sbc1", role: "probe", uplink: "isp1" });
    expect(a.status).toBe(201);
    expect(a.json.secret).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect((await call("POST", "/v1/sites/enrol/agents", { id: "sbc1", role: "probe", uplink: "isp1" })).status).toBe(
      409,
    );
    const status = (await call("GET", "/v1/sites/enrol/status")).json;
    expect(JSON.stringify(status)).not.toContain(a.json.secret);
    expect((await call("DELETE", "/v1/sites/enrol/agents/sbc1")).status).toBe(200);
    expect((await call("DELETE", "/v1/sites/enrol/agents/sbc1")).status).toBe(404);
  });

  it.each([
    [{ id: "p", role: "probe" }, "uplink"],
    [{ id: "s", role: "server", uplink: "isp1" }, "uplink"],
    [{ id: "p", role: "probe", uplink: "isp9" }, "uplink"],
    [{ id: "p", role: "probe", uplink: "isp1", tunnelRestarter: true }, "tunnelRestarter"],
    [{ id: "p", role: "router" }, "role"],
    [{ id: "-p", role: "server" }, "id"],
  ])("rejects enrolment %j naming %s", async (body, path) => {
    await createSite("enrol-bad");
    const r = await call("POST", "/v1/sites/enrol-bad/agents", body);
    expect(r.status).toBe(400);
    expect(r.json.error.issues.map((i: { path: string }) => i.path)).toContain(path);
  });

  it("refuses agents and overrides on a site without config", async () => {
    expect((await call("POST", "/v1/sites/ghost/agents", { id: "a", role: "server" })).status).toBe(404);
    expect((await call("GET", "/v1/sites/ghost/status")).status).toBe(404);
  });

  it("refuses a config that removes the uplink a probe sits behind", async () => {
    await createSite("shrink", {
      uplinks: [
        { id: "isp1", priority: 1 },
        { id: "isp2", priority: 2 },
        { id: "isp3", priority: 3 },
      ],
    });
    await call("POST", "/v1/sites/shrink/agents", { id: "sbc3", role: "probe", uplink: "isp3" });
    const r = await call("PUT", "/v1/sites/shrink", twoUplinks());
    expect(r.status).toBe(409);
    expect(r.json.error.message).toContain("sbc3");
  });
});
