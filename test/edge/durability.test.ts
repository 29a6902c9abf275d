import { runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { EVENT_RETENTION, SiteStore } from "../../worker/src/store.ts";
import { Channel, TestAgent, call, createSite, edgeClock, events, stubFor } from "./support.ts";

// In the future: alarms fire only when a test runs them, so each one is seen.
const at = edgeClock(Date.UTC(2031, 10, 25, 12, 0, 0));

/** What SQLite holds now: the stored decision's generation and the switch events, by generation. */
const stored = (site: string) =>
  runInDurableObject(stubFor(site), (_i, state) => {
    const sql = state.storage.sql;
    const decision = JSON.parse(
      sql.exec<{ value: string }>(`SELECT value FROM meta WHERE key = 'decision'`).one().value,
    );
    const switches = sql
      .exec<{ data: string }>(`SELECT data FROM events WHERE kind = 'switch'`)
      .toArray()
      .map((r) => JSON.parse(r.data).generation as number);
    return { generation: decision.generation as number, switches };
  });

const lastSeenStored = (site: string, agent: string) =>
  runInDurableObject(
    stubFor(site),
    (_i, state) =>
      JSON.parse(
        state.storage.sql.exec<{ runtime: string }>(`SELECT runtime FROM agents WHERE id = ?`, agent).one().runtime,
      ).lastSeenAt as number | null,
  );

describe("what SQLite holds", () => {
  it("a switch and its event are stored together before any agent hears of it, and neither without the other", async () => {
    await createSite("dur-tx");
    const sbc1 = await TestAgent.enroll("dur-tx", "sbc1", "probe", { uplink: "isp1" });
    const sbc2 = await TestAgent.enroll("dur-tx", "sbc2", "probe", { uplink: "isp2" });
    const ch = new Channel((await sbc1.connect("isp1")).webSocket!, sbc1);
    await sbc2.beat("isp2");
    await ch.send("isp1");
    await ch.until(
      () => ch.messages.some((m) => m.type === "directive" && m.directive?.generation === 1),
      "generation 1",
    );
    const pin = (uplink: string) =>
      call("POST", "/v1/sites/dur-tx/override", { uplink, forSeconds: 60, reason: "test" });
    expect((await pin("isp2")).status).toBe(200);
    await ch.until(
      () => ch.messages.some((m) => m.type === "directive" && m.directive?.generation === 2),
      "generation 2 pushed",
    );
    // What the agent heard, SQLite already held: the decision and its switch event.
    expect(await stored("dur-tx")).toEqual({ generation: 2, switches: [1, 2] });

    // The next switch's event cannot be written: the decision is not either, and no agent is told.
    const sql = (q: string) => runInDurableObject(stubFor("dur-tx"), (_i, state) => void state.storage.sql.exec(q));
    await sql(`ALTER TABLE events RENAME TO events_gone`);
    const heard = ch.messages.length;
    expect((await pin("isp1")).status).toBe(500);
    await ch.send("isp1");
    await ch.until(
      () => ch.messages.some((m, i) => i >= heard && m.type === "directive" && m.ackSeq !== null),
      "the answer to a heartbeat",
    );
    expect(ch.messages.slice(heard)).toMatchObject([
      { type: "directive", directive: { generation: 2, activeUplink: "isp2" } },
    ]);
    await sql(`ALTER TABLE events_gone RENAME TO events`);
    expect(await stored("dur-tx")).toEqual({ generation: 2, switches: [1, 2] });
    ch.ws.close();
  });

  it("checkpoints an agent's last-seen time every 5 minutes, not at every heartbeat", async () => {
    const t0 = Date.now();
    await createSite("dur-checkpoint");
    const sbc1 = await TestAgent.enroll("dur-checkpoint", "sbc1", "probe", { uplink: "isp1" });
    const sbc2 = await TestAgent.enroll("dur-checkpoint", "sbc2", "probe", { uplink: "isp2" });
    const alarmAt = () => runInDurableObject(stubFor("dur-checkpoint"), (_i, state) => state.storage.getAlarm());
    for (let t = 0; t < 300_000; t += 10_000) {
      at(t);
      await sbc1.beat("isp1");
      await sbc2.beat("isp2");
      // Alarms due meanwhile (the deadlines' backstop) run as they would.
      const due = await alarmAt();
      if (due !== null && due <= Date.now()) await runDurableObjectAlarm(stubFor("dur-checkpoint"));
    }
    // Heard every 10 s for 290 s: SQLite still holds the first heartbeat's time.
    expect(await lastSeenStored("dur-checkpoint", "sbc1")).toBe(t0);
    expect(await alarmAt()).toBeLessThanOrEqual(t0 + 300_000);
    at(300_000);
    expect(await runDurableObjectAlarm(stubFor("dur-checkpoint"))).toBe(true);
    expect(await lastSeenStored("dur-checkpoint", "sbc1")).toBe(t0 + 290_000);
  });

  it(`keeps the newest ${EVENT_RETENTION} events`, async () => {
    await createSite("dur-retention");
    const newest = await runInDurableObject(stubFor("dur-retention"), (_i, state) => {
      const store = new SiteStore(state.storage);
      store.loadNewestSeq();
      for (let i = 0; i < EVENT_RETENTION + 150; i += 50)
        store.appendEvents(
          Array.from({ length: 50 }, (_, j) => ({
            at: Date.now(),
            kind: "config" as const,
            message: `filler ${i + j}`,
            data: { uplinks: [] },
          })),
        );
      return store.newestSeq;
    });
    const seqs = await runInDurableObject(stubFor("dur-retention"), (_i, state) =>
      state.storage.sql
        .exec<{ seq: number }>(`SELECT seq FROM events ORDER BY seq`)
        .toArray()
        .map((r) => r.seq),
    );
    expect(seqs).toHaveLength(EVENT_RETENTION);
    expect(seqs[0]).toBe(newest - EVENT_RETENTION + 1);
    expect(seqs.at(-1)).toBe(newest);
    expect((await events("dur-retention", 1))[0]).toMatchObject({ message: `filler ${EVENT_RETENTION + 149}` });
  });
});
