import { describe, expect, it } from "vitest";
import { deriveSigningKey, importSigningKey, newSecret, sign, verify } from "#shared";
import { EdgeClock } from "../../agent/src/edge/clock.ts";
import { EdgeSigner } from "../../agent/src/edge/signer.ts";
import { respellings } from "../respell.ts";

async function pair() {
  const secret = newSecret();
  // The edge's side: it holds only the derived key.
  const edgeKey = await importSigningKey(await deriveSigningKey(secret));
  const agent = await EdgeSigner.fromSecret("office", "srv1", secret);
  return { edgeKey, agent };
}

const directive = (now: number) =>
  JSON.stringify({
    type: "directive",
    directive: { generation: 3, activeUplink: "isp2", restartTunnels: false },
    now,
    ackSeq: 7,
  });

describe("agent signing with the shared module", () => {
  it("the edge verifies what the agent signs (up)", async () => {
    const { edgeKey, agent } = await pair();
    const body = JSON.stringify({ type: "heartbeat", seq: 1 });
    const sig = await agent.sign(body, 1_000);
    expect(await verify(edgeKey, { direction: "up", site: "office", agent: "srv1", ts: 1_000, body }, sig)).toBe(true);
    expect(await verify(edgeKey, { direction: "up", site: "office", agent: "srv1", ts: 1_001, body }, sig)).toBe(false);
    expect(await verify(edgeKey, { direction: "down", site: "office", agent: "srv1", ts: 1_000, body }, sig)).toBe(
      false,
    );
  });

  it("the agent accepts what the edge signs (down) and rejects tampering, other agents and the wrong direction", async () => {
    const { edgeKey, agent } = await pair();
    const body = directive(5_000);
    const sig = await sign(edgeKey, { direction: "down", site: "office", agent: "srv1", ts: 5_000, body });
    const ok = await agent.verifyDown(body, 5_000, sig);
    expect(ok.ok && ok.message.type === "directive" && ok.message.directive?.activeUplink).toBe("isp2");

    expect((await agent.verifyDown(body.replace("isp2", "isp1"), 5_000, sig)).ok).toBe(false);
    expect((await agent.verifyDown(body, 5_001, sig)).ok).toBe(false);
    expect((await agent.verifyDown(body, 5_000, "")).ok).toBe(false);
    const up = await sign(edgeKey, { direction: "up", site: "office", agent: "srv1", ts: 5_000, body });
    expect((await agent.verifyDown(body, 5_000, up)).ok).toBe(false);
    const other = await sign(edgeKey, { direction: "down", site: "office", agent: "srv2", ts: 5_000, body });
    expect((await agent.verifyDown(body, 5_000, other)).ok).toBe(false);
    const { agent: stranger } = await pair();
    expect((await stranger.verifyDown(body, 5_000, sig)).ok).toBe(false);
  });

  it("WebSocket frames: signed ones are verified, unsigned errors are reported but not trusted", async () => {
    const { edgeKey, agent } = await pair();
    const body = directive(9_000);
    const frame = JSON.stringify({
      ts: 9_000,
      sig: await sign(edgeKey, { direction: "down", site: "office", agent: "srv1", ts: 9_000, body }),
      body,
    });
    expect((await agent.verifyFrame(frame)).ok).toBe(true);
    const unsigned = await agent.verifyFrame(
      JSON.stringify({ type: "error", now: 9_000, error: { code: "stale_timestamp", message: "x" } }),
    );
    expect(unsigned.ok).toBe(false);
    expect(unsigned.unsigned?.type).toBe("error");
    // A directive without a signature is never accepted.
    expect((await agent.verifyFrame(body)).ok).toBe(false);
  });

  it("refuses the edge's signature in any spelling but the canonical one, over HTTP and on the channel", async () => {
    const { edgeKey, agent } = await pair();
    const body = directive(7_000);
    const sig = await sign(edgeKey, { direction: "down", site: "office", agent: "srv1", ts: 7_000, body });
    expect((await agent.verifyDown(body, 7_000, sig)).ok).toBe(true);
    for (const other of respellings(sig)) {
      expect(await agent.verifyDown(body, 7_000, other), other).toEqual({ ok: false, reason: "bad signature" });
      expect((await agent.verifyFrame(JSON.stringify({ ts: 7_000, sig: other, body }))).ok, other).toBe(false);
    }
  });

  it("round trip through frame(): the body is the exact signed string", async () => {
    const { edgeKey, agent } = await pair();
    const f = await agent.frame('{"a":1}', 42);
    expect(
      await verify(edgeKey, { direction: "up", site: "office", agent: "srv1", ts: f.ts, body: f.body }, f.sig),
    ).toBe(true);
  });
});

describe("EdgeClock", () => {
  it("signs in edge time: the offset comes from the edge's answers, centred on the round trip", () => {
    let local = 1_000_000;
    const clock = new EdgeClock(() => local);
    expect(clock.now()).toBe(1_000_000);
    // Edge is 3,600 s ahead; request took 200 ms.
    clock.observe(1_000_000 + 3_600_000 + 100, 1_000_000, 1_000_200);
    local = 1_000_200;
    expect(clock.now()).toBe(1_000_200 + 3_600_000);
    expect(clock.synced).toBe(true);
  });
});
