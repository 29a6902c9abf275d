import { describe, expect, it } from "vitest";
import { createSite, edgeClock, events, status, TestAgent } from "./support.ts";

const at = edgeClock(Date.UTC(2026, 11, 3, 9, 0, 0));
const IP1 = "198.51.100.1";
const IP2 = "198.51.100.5";

async function site(name: string) {
  await createSite(name);
  const enroll = (id: string, role: "probe" | "server", uplink?: string) =>
    TestAgent.enroll(name, id, role, uplink ? { uplink } : {});
  return {
    sbc1: await enroll("sbc1", "probe", "isp1"),
    sbc2: await enroll("sbc2", "probe", "isp2"),
    srv1: await enroll("srv1", "server"),
    srv2: await enroll("srv2", "server"),
  };
}

type Site = Awaited<ReturnType<typeof site>>;

/** Every agent beats through every uplink it has, once a second over [from, to); isp1 only while `isp1`. */
async function beats(s: Site, from: number, to: number, isp1 = true) {
  for (let t = from; t < to; t += 1_000) {
    at(t);
    if (isp1) await s.sbc1.beat("isp1", { ip: IP1 });
    await s.sbc2.beat("isp2", { ip: IP2 });
    for (const srv of [s.srv1, s.srv2]) {
      if (isp1) await srv.beat("isp1", { ip: IP1 });
      await srv.beat("isp2", { ip: IP2 });
    }
  }
}

const report = (srv: TestAgent, t: number, since: number) => {
  at(t);
  return srv.beat("isp2", { ip: IP2, extra: { unanswered: [{ uplink: "isp1", since }] } });
};

describe("witness reports", () => {
  it("the edge lists `unanswered` among the fields it accepts", async () => {
    const s = await site("wit-accepts");
    at(0);
    const r = await s.srv1.postRaw(s.srv1.heartbeatBody("isp1"), { ip: IP1 });
    expect(r.json.accepts).toContain("unanswered");
  });

  it("two servers reporting isp1 unanswered through isp2 fail the site over a heartbeat after the cut, not downAfterMs", async () => {
    const s = await site("wit-cut");
    await beats(s, 0, 10_000);
    expect((await status("wit-cut")).activeUplink).toBe("isp1");
    // Cut at 9.5 s: isp1 was last heard at 9 s; the servers' beats at 10 s go unanswered.
    await report(s.srv1, 10_300, 10_000);
    await report(s.srv2, 10_310, 10_000);
    expect((await status("wit-cut")).activeUplink).toBe("isp1");
    await report(s.srv1, 10_500, 10_000);
    const directive = await report(s.srv2, 10_510, 10_000);
    expect(directive).toMatchObject({ activeUplink: "isp2", generation: 2 });
    const down = (await events("wit-cut")).find((e) => e.kind === "uplink" && e.data.to === "down");
    expect(down?.message).toBe("isp1: up → down (unanswered for srv1, srv2 while another uplink answers)");
    expect(down?.data.witnesses).toEqual(["srv1", "srv2"]);
  });

  it("one server's reports (its own LAN port) move nothing while isp1 is heard from the others", async () => {
    const s = await site("wit-one");
    await beats(s, 0, 10_000);
    for (let t = 10_000; t < 20_000; t += 1_000) {
      at(t);
      await s.sbc1.beat("isp1", { ip: IP1 });
      await s.sbc2.beat("isp2", { ip: IP2 });
      await s.srv2.beat("isp1", { ip: IP1 });
      await s.srv2.beat("isp2", { ip: IP2 });
      await report(s.srv1, t + 300, 10_000);
      await report(s.srv1, t + 500, 10_000);
    }
    const st = await status("wit-one");
    expect(st.activeUplink).toBe("isp1");
    expect(st.generation).toBe(1);
  });

  it("probes cannot witness: their reports are no evidence", async () => {
    const s = await site("wit-probe");
    await beats(s, 0, 10_000);
    for (const t of [10_300, 10_500, 10_700]) {
      at(t);
      await s.sbc2.beat("isp2", { ip: IP2, extra: { unanswered: [{ uplink: "isp1", since: 10_000 }] } });
      await report(s.srv1, t + 5, 10_000);
    }
    expect((await status("wit-probe")).activeUplink).toBe("isp1");
  });
});
