import { describe, expect, it } from "vitest";
import { CLOSE_REPLACED } from "#shared";
import { Channel, createSite, edgeClock, events, REFUSING, status, TestAgent, twoUplinks } from "./support.ts";

const at = edgeClock(Date.UTC(2031, 5, 1, 9, 0, 0));
const V4 = { isp1: "198.51.100.1", isp2: "198.51.100.5" };
const V6 = { isp1: "2001:db8:1::", isp2: "2001:db8:2::" };

const answered = (ch: Channel, seq: number) =>
  ch.until(() => ch.messages.find((m) => m.type === "directive" && m.ackSeq === seq), `an answer to ${seq}`);

describe("IPv6 channels", () => {
  it("an agent's IPv4 and IPv6 channels of one uplink live side by side; a reconnect replaces only its own family's", async () => {
    await createSite("fam");
    const srv = await TestAgent.enroll("fam", "srv", "server");
    const v4 = new Channel((await srv.connect("isp1", { ip: V4.isp1 })).webSocket!, srv);
    // Each connect signs the same body: a tick apart, so none is a replay.
    at(1);
    const v6 = new Channel((await srv.connect("isp1", { ip: `${V6.isp1}21` })).webSocket!, srv);
    await v4.send("isp1");
    await answered(v4, 0);
    await v6.send("isp1");
    await answered(v6, 1);
    expect([v4.closed, v6.closed]).toEqual([null, null]);

    at(2);
    const v6again = new Channel((await srv.connect("isp1", { ip: `${V6.isp1}22` })).webSocket!, srv);
    await v6.until(() => v6.closed, "the old IPv6 channel's close");
    expect(v6.closed!.code).toBe(CLOSE_REPLACED);
    await v4.send("isp1");
    await answered(v4, 2);
    expect(v4.closed).toBeNull();

    // An IPv4 client of a dual-stack listener is IPv4: it replaces the IPv4 channel, not the IPv6 one.
    at(3);
    const mapped = new Channel((await srv.connect("isp1", { ip: `::ffff:${V4.isp1}` })).webSocket!, srv);
    await v4.until(() => v4.closed, "the IPv4 channel's close");
    expect(v4.closed!.code).toBe(CLOSE_REPLACED);
    await v6again.send("isp1");
    await answered(v6again, 3);
    expect([mapped.closed, v6again.closed]).toEqual([null, null]);

    // Bad input on an IPv6 channel is refused as on any other, naming the field.
    await v6again.send("isp2");
    const refused = await v6again.until(
      () => v6again.messages.find((m) => m.type === "error" && m.error.code === "validation_failed"),
      "a validation error",
    );
    expect(refused.type === "error" && refused.error.message).toContain(
      'uplink: "isp2" sent on the channel for "isp1"',
    );
  });

  it("each family spends an allowance of its own: IPv6 flooding never throttles IPv4 heartbeats", async () => {
    await createSite("fam-rate");
    const sbc = await TestAgent.enroll("fam-rate", "sbc1", "probe", { uplink: "isp1" });
    const codes: number[] = [];
    // A probe may send 4 per interval plus a burst of 20 per family; the clock stands still here.
    for (let i = 0; i < 26; i++)
      codes.push((await sbc.postRaw(sbc.heartbeatBody("isp1"), { ip: `${V6.isp1}10` })).status);
    expect(codes.filter((c) => c === 200)).toHaveLength(24);
    expect(codes.at(-1)).toBe(429);
    expect((await sbc.postRaw(sbc.heartbeatBody("isp1"), { ip: V4.isp1 })).status).toBe(200);
  });

  it("a server misrouted over IPv6 stays flagged while its IPv4 heartbeats for that uplink are right", async () => {
    await createSite("fam-mis");
    const sbc1 = await TestAgent.enroll("fam-mis", "sbc1", "probe", { uplink: "isp1" });
    const sbc2 = await TestAgent.enroll("fam-mis", "sbc2", "probe", { uplink: "isp2" });
    const srv = await TestAgent.enroll("fam-mis", "srv", "server");
    for (let t = 0; t <= 3_000; t += 1_000) {
      at(t);
      for (const [a, u] of [
        [sbc1, "isp1"],
        [sbc2, "isp2"],
      ] as const) {
        await a.beat(u, { ip: V4[u] });
        await a.beat(u, { ip: `${V6[u]}10` });
      }
      // isp2's IPv6 heartbeats leave through isp1 (a broken IPv6 rule); its IPv4 ones are right.
      await srv.beat("isp2", { ip: V4.isp2 });
      await srv.beat("isp2", { ip: `${V6.isp1}21` });
    }
    const s = await status("fam-mis");
    expect(s.agents.find((a) => a.id === "srv")!.misroutedUplinks).toEqual(["isp2"]);
    const log = await events("fam-mis");
    expect(log.filter((e) => e.kind === "misrouted").map((e) => e.message)).toEqual([
      "srv: heartbeats for isp2 over IPv6 arrive through isp1 (check its policy routing); not counted for isp2",
    ]);
    expect(log.filter((e) => e.kind === "misrouted-cleared")).toEqual([]);
  });

  it("IPv6 silence on an uplink while IPv4 is heard: shown per uplink, one event and notification, no switch; back is one event", async () => {
    await createSite("fam-silent", { ...twoUplinks(), notify: [{ kind: "webhook", url: REFUSING }] });
    const sbc1 = await TestAgent.enroll("fam-silent", "sbc1", "probe", { uplink: "isp1" });
    const sbc2 = await TestAgent.enroll("fam-silent", "sbc2", "probe", { uplink: "isp2" });
    const beat = async (ipv6OnIsp1: boolean) => {
      await sbc1.beat("isp1", { ip: V4.isp1 });
      if (ipv6OnIsp1) await sbc1.beat("isp1", { ip: `${V6.isp1}10` });
      await sbc2.beat("isp2", { ip: V4.isp2 });
    };
    for (let t = 0; t <= 8_000; t += 1_000) at(t), await beat(true);
    let s = await status("fam-silent");
    expect(s.uplinks.map((u) => [u.id, u.ipv6, u.lastIpv6HeartbeatAt])).toEqual([
      ["isp1", "heard", Date.now()],
      ["isp2", "none", null],
    ]);
    const v6Of = (st: typeof s) => st.agents.map((a) => [a.id, a.uplinksSeen, a.ipv6Uplinks]);
    expect(v6Of(s)).toEqual([
      ["sbc1", ["isp1"], ["isp1"]],
      ["sbc2", ["isp2"], []],
    ]);

    // isp1's IPv6 stops; its IPv4 goes on. The window is 2 × downAfterMs (6 s).
    for (let t = 9_000; t <= 14_000; t += 1_000) at(t), await beat(false);
    expect((await events("fam-silent")).filter((e) => e.kind === "ipv6-silent")).toEqual([]);
    at(15_000);
    await beat(false);
    s = await status("fam-silent");
    expect(s.activeUplink).toBe("isp1");
    expect(s.uplinks.map((u) => [u.id, u.state, u.ipv6])).toEqual([
      ["isp1", "up", "silent"],
      ["isp2", "up", "none"],
    ]);
    expect(v6Of(s)).toEqual([
      ["sbc1", ["isp1"], []],
      ["sbc2", ["isp2"], []],
    ]);
    let log = await events("fam-silent");
    const silent = log.filter((e) => e.kind === "ipv6-silent");
    expect(silent.map((e) => e.data)).toEqual([{ uplink: "isp1", lastHeardAt: Date.UTC(2031, 5, 1, 9, 0, 8) }]);
    expect(silent[0]!.message).toBe(
      "isp1: no IPv6 heartbeat for 7 s while IPv4 is heard (IPv6 through isp1 is broken; no switch)",
    );
    expect(log.filter((e) => e.kind === "switch").map((e) => e.data.reason)).toEqual(["initial"]);
    expect((await status("fam-silent")).notify.pending).toBe(1);

    at(20_000);
    await beat(true);
    log = await events("fam-silent");
    expect(log.filter((e) => e.kind === "ipv6-silent")).toHaveLength(1);
    expect(log.filter((e) => e.kind === "ipv6-back").map((e) => e.data)).toEqual([
      { uplink: "isp1", silentForMs: 12_000 },
    ]);
    expect((await status("fam-silent")).uplinks[0]!.ipv6).toBe("heard");
  });

  /**
   * A probe behind each uplink, one beat a second; isp1 heard over both families until 3 s, then
   * cut, back over IPv4 at `v4Back` and over IPv6 at `v6Back`: the kinds of the events recorded.
   */
  async function cutAndBack(site: string, v4Back: number, v6Back: number, until: number): Promise<string[]> {
    await createSite(site);
    const sbc1 = await TestAgent.enroll(site, "sbc1", "probe", { uplink: "isp1" });
    const sbc2 = await TestAgent.enroll(site, "sbc2", "probe", { uplink: "isp2" });
    for (let t = 0; t <= until; t += 1_000) {
      at(t);
      if (t <= 3_000 || t >= v4Back) await sbc1.beat("isp1", { ip: V4.isp1 });
      if (t <= 3_000 || t >= v6Back) await sbc1.beat("isp1", { ip: `${V6.isp1}10` });
      await sbc2.beat("isp2", { ip: V4.isp2 });
    }
    return (await events(site)).map((e) => e.kind);
  }

  it("an uplink back from a cut gets a window for its IPv6 to return before any IPv6 silence is said", async () => {
    // Cut for 20 s, then IPv4 comes back 4 s before IPv6.
    const kinds = await cutAndBack("fam-cut", 24_000, 28_000, 29_000);
    expect(kinds).toContain("switch");
    expect(kinds.filter((k) => k === "ipv6-silent" || k === "ipv6-back")).toEqual([]);
  });

  it("a cut shorter than the IPv6 window but longer than downAfterMs is a cut too: IPv6 gets its window after it", async () => {
    // Cut for 5 s (down after 3 s; the IPv6 window is 6 s); IPv6 back 3 s after IPv4 (its
    // WebSocket reconnects on a backoff).
    const kinds = await cutAndBack("fam-short-cut", 8_000, 11_000, 16_000);
    expect(kinds).toContain("switch");
    expect(kinds.filter((k) => k === "ipv6-silent" || k === "ipv6-back")).toEqual([]);
  });
});
