import { describe, expect, it } from "vitest";
import { TestAgent, call, createSite, events, status } from "./support.ts";

async function site(name: string) {
  await createSite(name);
  return {
    sbc1: await TestAgent.enroll(name, "sbc1", "probe", { uplink: "isp1" }),
    srv1: await TestAgent.enroll(name, "srv1", "server", { tunnelRestarter: true }),
  };
}

describe("HTTP heartbeat", () => {
  it("accepts a signed heartbeat and answers with a signed directive", async () => {
    const { sbc1, srv1 } = await site("hb-ok");
    expect(await sbc1.beat("isp1")).toEqual({ generation: 1, activeUplink: "isp1", restartTunnels: false });
    await srv1.beat("isp2", { extra: { appliedGeneration: 1, routedUplink: "isp1" } });
    const s = await status("hb-ok");
    expect(s.uplinks.find((u) => u.id === "isp1")!.state).toBe("up");
    const agent = s.agents.find((a) => a.id === "srv1")!;
    expect(agent).toMatchObject({
      appliedGeneration: 1,
      routedUplink: "isp1",
      version: "0.2.0-test",
      uplinksSeen: ["isp2"],
      stale: false,
    });
  });

  it("rejects, without any state change but a line per reason on the timeline: bad signature, stale or future timestamp, replay, unknown agent, bad body", async () => {
    const { sbc1 } = await site("hb-bad");
    const before = { status: await status("hb-bad"), events: await events("hb-bad") };
    const body = sbc1.heartbeatBody("isp1");
    const cases: [string, Promise<{ status: number; json: any; headers: Headers }>, number, string][] = [
      ["bad signature", sbc1.postRaw(body, { sig: "A".repeat(43) }), 401, "bad_signature"],
      [
        "signature of another body",
        sbc1.postRaw(body, { sig: (await sbc1.signed(`${body} `)).sig }),
        401,
        "bad_signature",
      ],
      ["stale timestamp", sbc1.postRaw(body, { ts: Date.now() - 31_000 }), 401, "stale_timestamp"],
      ["future timestamp", sbc1.postRaw(body, { ts: Date.now() + 31_000 }), 401, "stale_timestamp"],
      ["malformed JSON", sbc1.postRaw("{nope"), 400, "invalid_json"],
      ["unknown field", sbc1.postRaw(JSON.stringify({ ...JSON.parse(body), extra: 1 })), 400, "validation_failed"],
      ["unknown uplink", sbc1.postRaw(sbc1.heartbeatBody("isp9")), 400, "validation_failed"],
      ["probe claiming the other uplink", sbc1.postRaw(sbc1.heartbeatBody("isp2")), 400, "validation_failed"],
      [
        "oversize body",
        sbc1.postRaw(JSON.stringify({ ...JSON.parse(body), lastError: "x".repeat(9_000) })),
        413,
        "payload_too_large",
      ],
    ];
    for (const [what, pending, code, errCode] of cases) {
      const r = await pending;
      expect(r.status, what).toBe(code);
      expect(r.json.error.code, what).toBe(errCode);
      expect(Number(r.headers.get("x-wanwatch-now")), what).toBeGreaterThan(0);
    }
    const after = await status("hb-bad");
    expect({ ...after, now: 0 }).toEqual({ ...before.status, now: 0 });
    const added = (await events("hb-bad")).slice(0, -before.events.length);
    expect(added.every((e) => e.kind === "heartbeat-rejected")).toBe(true);
    // An oversize body is refused by the Worker before it reaches the site's object.
    expect(added.map((e) => e.data!.code).reverse()).toEqual([
      "bad_signature",
      "stale_timestamp",
      "invalid_json",
      "validation_failed",
    ]);
  });

  it("rejects a replayed message", async () => {
    const { sbc1 } = await site("hb-replay");
    const body = sbc1.heartbeatBody("isp1");
    const s = await sbc1.signed(body);
    const send = () => sbc1.postRaw(body, { ts: s.ts, sig: s.sig });
    expect((await send()).status).toBe(200);
    const again = await send();
    expect(again.status).toBe(409);
    expect(again.json.error.code).toBe("replayed");
  });

  it("answers a revoked agent with 401 and an agent of another site too", async () => {
    const { sbc1 } = await site("hb-revoke");
    await site("hb-other");
    await call("DELETE", "/v1/sites/hb-revoke/agents/sbc1");
    const r = await sbc1.postRaw(sbc1.heartbeatBody("isp1"));
    expect(r.status).toBe(401);
    expect(r.json.error.code).toBe("unknown_agent");
    // The same agent id in another site has another key: a signature from this site is worthless there.
    const body = sbc1.heartbeatBody("isp1");
    const s = await sbc1.signed(body);
    const cross = await call("POST", "/v1/sites/hb-other/heartbeat", body, null, {
      "content-type": "application/json",
      "x-wanwatch-agent": "sbc1",
      "x-wanwatch-ts": String(s.ts),
      "x-wanwatch-sig": s.sig,
    });
    expect(cross.status).toBe(401);
    expect(cross.json.error.code).toBe("bad_signature");
  });

  it("needs the signature headers", async () => {
    await site("hb-unsigned");
    const r = await call("POST", "/v1/sites/hb-unsigned/heartbeat", "{}", null, { "x-wanwatch-agent": "sbc1" });
    expect(r.status).toBe(401);
    expect(r.json.error.code).toBe("unsigned");
  });
});
