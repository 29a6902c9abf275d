import { evictDurableObject, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { WAKE_REPLAY_MARGIN_MS } from "../../worker/src/site/auth.ts";
import { MAX_AGENTS } from "../../worker/src/site/registry.ts";
import { Channel, TestAgent, call, createSite, edgeClock, events, stubFor } from "./support.ts";

const at = edgeClock(Date.UTC(2026, 0, 1));

describe("per-agent rate limit", () => {
  it("answers 429 with Retry-After past the allowance, counts only signed messages, and refills with time", async () => {
    await createSite("rate");
    const sbc1 = await TestAgent.enroll("rate", "sbc1", "probe", { uplink: "isp1" });
    // Forged messages under its id spend nothing of the agent's allowance.
    for (let i = 0; i < 50; i++)
      expect((await sbc1.postRaw(sbc1.heartbeatBody("isp1"), { sig: "A".repeat(43) })).status).toBe(401);
    const answers: number[] = [];
    // A probe may send 4 per interval plus a burst of 20; the clock stands still here.
    for (let i = 0; i < 30; i++) answers.push((await sbc1.postRaw(sbc1.heartbeatBody("isp1"))).status);
    expect(answers.filter((s) => s === 200)).toHaveLength(24);
    const refused = await sbc1.postRaw(sbc1.heartbeatBody("isp1"));
    expect(refused.status).toBe(429);
    expect(refused.json.error.code).toBe("rate_limited");
    expect(refused.headers.get("retry-after")).toBe("1");
    at(1_000);
    expect((await sbc1.postRaw(sbc1.heartbeatBody("isp1"))).status).toBe(200);
    expect(
      (await events("rate")).filter((e) => e.kind === "heartbeat-rejected" && e.data.code === "rate_limited"),
    ).toHaveLength(1);
  });

  it("refuses an over-eager WebSocket too, with an error frame", async () => {
    await createSite("rate-ws");
    const srv1 = await TestAgent.enroll("rate-ws", "srv1", "server");
    const ch = new Channel((await srv1.connect("isp1")).webSocket!, srv1);
    // A server on two uplinks: 8 per interval plus 20, the connect included.
    for (let i = 0; i < 28; i++) await ch.send("isp1");
    await ch.until(
      () => ch.messages.some((m) => m.type === "error" && m.error.code === "rate_limited"),
      "a rate_limited frame",
    );
    expect(ch.messages.filter((m) => m.type === "directive" && m.ackSeq !== null)).toHaveLength(27);
  });
});

describe("bounded tables", () => {
  it(`enrols at most ${MAX_AGENTS} agents per site`, async () => {
    await createSite("crowd");
    for (let i = 0; i < MAX_AGENTS; i++)
      expect((await call("POST", "/v1/sites/crowd/agents", { id: `srv${i}`, role: "server" })).status).toBe(201);
    const r = await call("POST", "/v1/sites/crowd/agents", { id: "one-more", role: "server" });
    expect(r.status).toBe(409);
    expect(r.json.error.code).toBe("too_many_agents");
  });
});

describe("replay guard across a restart", () => {
  it("refuses after an eviction a message signed before it, and takes fresh ones", async () => {
    await createSite("replay-wake");
    const sbc1 = await TestAgent.enroll("replay-wake", "sbc1", "probe", { uplink: "isp1" });
    const body = sbc1.heartbeatBody("isp1");
    const signed = await sbc1.signed(body);
    expect((await sbc1.postRaw(body, { ts: signed.ts, sig: signed.sig })).status).toBe(200);
    at(WAKE_REPLAY_MARGIN_MS + 1);
    await evictDurableObject(stubFor("replay-wake"));
    // The in-memory guard is gone; the signing time still gives the replay away.
    const replay = await sbc1.postRaw(body, { ts: signed.ts, sig: signed.sig });
    expect(replay.status).toBe(409);
    expect(replay.json.error.code).toBe("replayed");
    expect((await sbc1.postRaw(sbc1.heartbeatBody("isp1"))).status).toBe(200);
  });
});

describe("objects nobody configured", () => {
  it("a heartbeat or a connect to a site nobody created stores nothing", async () => {
    for (const path of ["/v1/sites/nobody/heartbeat"])
      expect(
        (
          await call("POST", path, "{}", null, {
            "x-wanwatch-agent": "x",
            "x-wanwatch-ts": String(Date.now()),
            "x-wanwatch-sig": "A".repeat(43),
          })
        ).status,
      ).toBe(404);
    const connect = await call("GET", "/v1/sites/nobody/agents/x/connect", undefined, null, {
      upgrade: "websocket",
      "x-wanwatch-uplink": "isp1",
      "x-wanwatch-ts": String(Date.now()),
      "x-wanwatch-sig": "A".repeat(43),
    });
    expect(connect.status).toBe(404);
    const tables = await runInDurableObject(stubFor("nobody"), (_i, state) =>
      state.storage.sql.exec<{ name: string }>("SELECT name FROM sqlite_master WHERE name NOT LIKE '_cf%'").toArray(),
    );
    expect(tables).toEqual([]);
  });
});
