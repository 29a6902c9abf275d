// Refusals and answers a person can act on: a misspelled site names the sites that exist and the
// command that creates one; an enrolled id points at --rotate; an offline restarter is called
// offline; clearing an override says when the site is back on its normal choice.
import { describe, expect, it } from "vitest";
import { VIEWER, call, createSite, edgeClock, events, status, TestAgent, twoUplinks } from "./support.ts";

const at = edgeClock(Date.UTC(2026, 11, 3, 6, 0, 0));

describe("a site nobody configured", () => {
  it("is answered with the sites that exist, closest first, and the command that creates it", async () => {
    for (const s of ["hn-office", "hn-offices", "hn-lab", "hn-warehouse"]) await createSite(s);
    for (const [method, path, token] of [
      ["GET", "/v1/sites/hn-ofice/status", VIEWER],
      ["DELETE", "/v1/sites/hn-ofice/override", undefined],
      ["POST", "/v1/sites/hn-ofice/notify/test", undefined],
      ["GET", "/v1/sites/hn-ofice/metrics", VIEWER],
    ] as const) {
      const r = await call(method, path, undefined, token);
      expect(r.status, path).toBe(404);
      expect(r.json.error.code).toBe("site_not_found");
      // Other test files create sites too: the closest three of all of them.
      expect(r.json.error.message, path).toMatch(
        /^no site "hn-ofice" on this edge; the sites here, closest first: hn-office, hn-offices, hn-lab \(\d+ in all\)\. To create it: wanwatch site apply FILE --site hn-ofice$/,
      );
    }
  });

  it("is not listed to an agent's heartbeat, which proves nothing about who sends it", async () => {
    await createSite("hn-real");
    const r = await call("POST", "/v1/sites/hn-reel/heartbeat", "{}", null, {
      "x-wanwatch-agent": "sbc1",
      "x-wanwatch-ts": String(Date.now()),
      "x-wanwatch-sig": "x",
    });
    expect(r.text).not.toContain("hn-real");
  });
});

describe("hints", () => {
  it("enrolling an id that exists points at --rotate", async () => {
    await createSite("hn-enroll");
    await TestAgent.enroll("hn-enroll", "srv1", "server");
    const r = await call("POST", "/v1/sites/hn-enroll/agents", { id: "srv1", role: "server" });
    expect(r.status).toBe(409);
    expect(r.json.error).toEqual({
      code: "agent_exists",
      message:
        'agent "srv1" is already enrolled in site "hn-enroll": for a new secret run wanwatch site enroll --id srv1 --rotate --site hn-enroll',
    });
  });

  it("a tunnel restarter that is enrolled but offline is called offline; none enrolled names the command", async () => {
    for (const [site, restarter] of [
      ["hn-tun-off", true],
      ["hn-tun-none", false],
    ] as const) {
      await createSite(site, twoUplinks({}, { tunnels: { restart: "cluster" } }));
      await TestAgent.enroll(site, "srv1", "server", { tunnelRestarter: restarter });
      await call("POST", `/v1/sites/${site}/override`, { uplink: "isp2", forSeconds: 600, reason: "test" });
    }
    const message = async (site: string) => (await events(site)).find((e) => e.kind === "tunnel-no-restarter")?.message;
    expect(await message("hn-tun-off")).toBe(
      "no live tunnel restarter for generation 1: srv1 is enrolled as tunnel restarter but offline",
    );
    expect(await message("hn-tun-none")).toBe(
      "no live tunnel restarter for generation 1: no server is enrolled as one (wanwatch site enroll --id ID --role server --tunnel-restarter)",
    );
  });
});

describe("DELETE /v1/sites/:site/override", () => {
  async function pinned(site: string, failbackAfterMs: number) {
    await createSite(site, twoUplinks({ failbackAfterMs, minDwellMs: 0 }, { tunnels: { restart: "none" } }));
    const sbc1 = await TestAgent.enroll(site, "sbc1", "probe", { uplink: "isp1" });
    const sbc2 = await TestAgent.enroll(site, "sbc2", "probe", { uplink: "isp2" });
    const beat = async (from: number, to: number) => {
      for (let t = from; t <= to; t += 1_000) at(t), await sbc1.beat("isp1"), await sbc2.beat("isp2");
    };
    await beat(0, 4_000);
    await call("POST", `/v1/sites/${site}/override`, { uplink: "isp2", forSeconds: 600, reason: "maintenance" });
    await beat(5_000, 8_000);
    return beat;
  }

  it("says the site is back on its normal choice at once when the hold-down has passed", async () => {
    await pinned("hn-clear-now", 5_000);
    const r = await call("DELETE", "/v1/sites/hn-clear-now/override");
    expect(r.status).toBe(200);
    expect(r.json).toMatchObject({
      activeUplink: "isp1",
      normalChoice: { uplink: "isp1", at: r.json.now, message: "back on isp1, the normal choice, at once" },
    });
  });

  it("says when the site returns when the failback hold-down still runs", async () => {
    const beat = await pinned("hn-clear-later", 60_000);
    const r = await call("DELETE", "/v1/sites/hn-clear-later/override");
    expect(r.status).toBe(200);
    // isp1 was first heard at t=0: back at t=60 s, 52 s after the clear at t=8 s.
    const back = Date.UTC(2026, 11, 3, 6, 1, 0);
    expect(r.json).toMatchObject({
      activeUplink: "isp2",
      normalChoice: {
        uplink: "isp1",
        at: back,
        message: `stays on isp2 until isp1 has been up for the failback hold-down (60 s): back on isp1 at ${new Date(back).toISOString()}, in 52 s`,
      },
    });
    // And so it is: still on isp2 a second before, on isp1 at that time.
    await beat(9_000, 59_000);
    expect((await status("hn-clear-later")).activeUplink).toBe("isp2");
    await beat(60_000, 60_000);
    expect((await status("hn-clear-later")).activeUplink).toBe("isp1");
  });
});
