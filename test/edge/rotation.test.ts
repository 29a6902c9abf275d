import { runDurableObjectAlarm } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { Channel, TestAgent, call, createSite, edgeClock, events, stubFor } from "./support.ts";

const at = edgeClock(Date.UTC(2026, 0, 1));

async function rotate(site: string, agent: string, body: unknown = {}) {
  const r = await call("POST", `/v1/sites/${site}/agents/${agent}/rotate`, body);
  if (r.status !== 200) throw new Error(`rotate: ${r.status} ${r.text}`);
  return r.json as { id: string; secret: string; previousValidUntil: number | null };
}

describe("secret rotation", () => {
  it("keeps the old secret working (answers signed with it) until the agent first signs with the new one", async () => {
    await createSite("rot");
    const old = await TestAgent.enroll("rot", "sbc1", "probe", { uplink: "isp1" });
    const r = await rotate("rot", "sbc1");
    expect(r.previousValidUntil).toBe(Date.now() + 86_400_000);
    expect(r.secret).not.toBe(old.secret);
    // beat() checks the answer's signature with the old key: no gap for an agent not yet updated.
    expect(await old.beat("isp1")).toMatchObject({ activeUplink: "isp1" });
    const fresh = await TestAgent.withSecret("rot", "sbc1", r.secret);
    await fresh.beat("isp1");
    const refused = await old.postRaw(old.heartbeatBody("isp1"));
    expect(refused.status).toBe(401);
    expect(refused.json.error.code).toBe("bad_signature");
    expect((await events("rot")).map((e) => e.kind).filter((k) => k.startsWith("agent-rotat"))).toEqual([
      "agent-rotation-done",
      "agent-rotated",
    ]);
  });

  it("refuses the old secret after the grace, or at once with graceSeconds 0", async () => {
    await createSite("rot-grace");
    const a = await TestAgent.enroll("rot-grace", "sbc1", "probe", { uplink: "isp1" });
    await rotate("rot-grace", "sbc1", { graceSeconds: 60 });
    at(59_000);
    expect((await a.postRaw(a.heartbeatBody("isp1"))).status).toBe(200);
    at(60_000);
    expect((await a.postRaw(a.heartbeatBody("isp1"))).status).toBe(401);
    const b = await TestAgent.enroll("rot-grace", "sbc2", "probe", { uplink: "isp2" });
    expect((await rotate("rot-grace", "sbc2", { graceSeconds: 0 })).previousValidUntil).toBeNull();
    expect((await b.postRaw(b.heartbeatBody("isp2"))).status).toBe(401);
  });

  it("closes the old secret's sockets once the new one is used", async () => {
    await createSite("rot-ws");
    const old = await TestAgent.enroll("rot-ws", "srv1", "server");
    const ch = new Channel((await old.connect("isp1")).webSocket!, old);
    const { secret } = await rotate("rot-ws", "srv1");
    await ch.send("isp1");
    await ch.until(
      () => ch.messages.some((m) => m.type === "directive" && m.ackSeq !== null),
      "an answer signed with the old key",
    );
    await (await TestAgent.withSecret("rot-ws", "srv1", secret)).beat("isp2");
    await ch.until(() => ch.closed, "the old socket closing");
    expect(ch.closed!.code).toBe(4401);
  });

  it("found in review: when the grace runs out unused, the old secret's socket is closed and gets no more directives", async () => {
    await createSite("rot-expire");
    const old = await TestAgent.enroll("rot-expire", "srv1", "server");
    const ch = new Channel((await old.connect("isp1")).webSocket!, old);
    await rotate("rot-expire", "srv1", { graceSeconds: 60 });
    at(60_000);
    await runDurableObjectAlarm(stubFor("rot-expire"));
    await ch.until(() => ch.closed, "the old socket closing at the grace's end");
    expect((await events("rot-expire")).find((e) => e.kind === "agent-rotation-done")!.message).toBe(
      "agent srv1: the grace of its old secret ran out; the old one is refused from now on",
    );
  });

  it("found in review: a second rotation closes the sockets of the first secret", async () => {
    await createSite("rot-twice");
    const first = await TestAgent.enroll("rot-twice", "srv1", "server");
    const ch = new Channel((await first.connect("isp1")).webSocket!, first);
    const second = await TestAgent.withSecret("rot-twice", "srv1", (await rotate("rot-twice", "srv1")).secret);
    await rotate("rot-twice", "srv1");
    await ch.until(() => ch.closed, "the first secret's socket closing");
    // The second secret is in its grace now.
    expect((await second.postRaw(second.heartbeatBody("isp1"))).status).toBe(200);
    expect((await first.postRaw(first.heartbeatBody("isp1"))).status).toBe(401);
  });

  it("refuses bad input, unknown agents and callers without the admin token", async () => {
    await createSite("rot-bad");
    await TestAgent.enroll("rot-bad", "sbc1", "probe", { uplink: "isp1" });
    const bad = await call("POST", "/v1/sites/rot-bad/agents/sbc1/rotate", { graceSeconds: -1 });
    expect(bad.status).toBe(400);
    expect(bad.json.error.issues[0].path).toBe("graceSeconds");
    expect((await call("POST", "/v1/sites/rot-bad/agents/nobody/rotate", {})).status).toBe(404);
    expect((await call("POST", "/v1/sites/rot-bad/agents/sbc1/rotate", {}, null)).status).toBe(401);
  });
});
