import { evictDurableObject, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import parsePrometheusTextFormat from "parse-prometheus-text-format";
import { SCHEMA_VERSION } from "../../worker/src/store.ts";
import {
  call,
  Channel,
  createSite,
  edgeClock,
  events,
  status,
  storedRows,
  stubFor,
  TestAgent,
  twoUplinks,
} from "./support.ts";

const at = edgeClock(Date.UTC(2026, 10, 23, 12, 0, 0));

describe("WebSocket channel", () => {
  it("accepts a signed upgrade, answers heartbeats, pushes a new directive on a switch, closes on revocation", async () => {
    await createSite("ws");
    const sbc1 = await TestAgent.enroll("ws", "sbc1", "probe", { uplink: "isp1" });
    const sbc2 = await TestAgent.enroll("ws", "sbc2", "probe", { uplink: "isp2" });
    const srv1 = await TestAgent.enroll("ws", "srv1", "server");
    const res = await srv1.connect("isp2");
    expect(res.status).toBe(101);
    const ch = new Channel(res.webSocket!, srv1);
    await sbc1.beat("isp1");
    await sbc2.beat("isp2");
    await ch.send("isp2");
    const first = await ch.until(() => ch.messages.find((m) => m.type === "directive" && m.ackSeq === 0), "an answer");
    // With the site's downAfterMs, which a probe's path window needs (agent/src/host/edge-path.ts),
    // and its heartbeatMs, the one source of every agent's interval.
    expect(first).toMatchObject({
      directive: { generation: 1, activeUplink: "isp1" },
      downAfterMs: 3_000,
      heartbeatMs: 1_000,
    });

    // The primary falls silent; the backup keeps speaking.
    at(2_000);
    await sbc2.beat("isp2");
    at(3_000);
    await sbc2.beat("isp2");
    const pushed = await ch.until(
      () => ch.messages.find((m) => m.type === "directive" && m.ackSeq === null && m.directive?.generation === 2),
      "a pushed directive",
    );
    expect(pushed).toMatchObject({ directive: { generation: 2, activeUplink: "isp2" } });

    await ch.sendRaw("not json");
    await ch.until(
      () => ch.messages.find((m) => m.type === "error" && m.error.code === "invalid_json"),
      "an error frame",
    );
    await ch.send("isp1"); // wrong uplink for this channel
    await ch.until(
      () => ch.messages.find((m) => m.type === "error" && m.error.code === "validation_failed"),
      "a validation error",
    );
    expect(ch.closed).toBeNull();

    await call("DELETE", "/v1/sites/ws/agents/srv1");
    await ch.until(() => ch.closed, "the close");
    expect(ch.closed!.code).toBe(4401);
  });

  it("answers an agent before 0.2 (which parsed strictly) without the fields it does not know", async () => {
    await createSite("compat");
    const old = await TestAgent.enroll("compat", "sbc1", "probe", { uplink: "isp1" });
    const oldAnswer = await old.postRaw(old.heartbeatBody("isp1", { version: "0.1.0" }));
    expect(oldAnswer.status).toBe(200);
    expect(Object.keys(oldAnswer.json).sort()).toEqual(["ackSeq", "directive", "now", "type"]);
    const upgraded = await old.postRaw(old.heartbeatBody("isp1", { version: "0.2.0" }));
    expect(upgraded.json).toMatchObject({ type: "directive", downAfterMs: 3_000 });
  });

  it("refuses unsigned, stale, and wrong-uplink upgrades", async () => {
    await createSite("ws-bad");
    const sbc1 = await TestAgent.enroll("ws-bad", "sbc1", "probe", { uplink: "isp1" });
    expect((await sbc1.connect("isp1", { sig: "A".repeat(43) })).status).toBe(401);
    expect((await sbc1.connect("isp1", { ts: Date.now() - 60_000 })).status).toBe(401);
    expect((await sbc1.connect("isp2")).status).toBe(403);
    expect((await sbc1.connect("isp9")).status).toBe(400);
    const plain = await call("GET", "/v1/sites/ws-bad/agents/sbc1/connect", undefined, null);
    expect(plain.status).toBe(426);
  });
});

describe("durability", () => {
  it("writes no SQLite rows for steady-state heartbeats", async () => {
    await createSite("quiet");
    const sbc1 = await TestAgent.enroll("quiet", "sbc1", "probe", { uplink: "isp1" });
    const sbc2 = await TestAgent.enroll("quiet", "sbc2", "probe", { uplink: "isp2" });
    const srv1 = await TestAgent.enroll("quiet", "srv1", "server");
    const beatAll = async () => {
      await sbc1.beat("isp1", { ip: "198.51.100.1" });
      await sbc2.beat("isp2", { ip: "198.51.100.5" });
      await srv1.beat("isp1", { ip: "198.51.100.1", extra: { appliedGeneration: 1 } });
      await srv1.beat("isp2", { ip: "198.51.100.5", extra: { appliedGeneration: 1 } });
    };
    await beatAll();
    at(1_000);
    await beatAll();
    const changes = () =>
      runInDurableObject(
        stubFor("quiet"),
        (_i, state) => state.storage.sql.exec<{ n: number }>("SELECT total_changes() AS n").one().n,
      );
    const before = await changes();
    for (let t = 2_000; t < 30_000; t += 1_000) {
      at(t);
      await beatAll();
    }
    expect((await changes()) - before).toBe(0);
  });

  it("a restart (eviction) keeps the state and causes no switch by itself", async () => {
    await createSite("evict");
    const sbc1 = await TestAgent.enroll("evict", "sbc1", "probe", { uplink: "isp1" });
    const sbc2 = await TestAgent.enroll("evict", "sbc2", "probe", { uplink: "isp2" });
    await sbc1.beat("isp1");
    await sbc2.beat("isp2");
    at(2_000);
    await sbc2.beat("isp2");
    const before = await status("evict");
    await evictDurableObject(stubFor("evict"));
    // 2.9 s after the restart the primary has still not spoken: it keeps its grace.
    at(4_900);
    await sbc2.beat("isp2");
    await runDurableObjectAlarm(stubFor("evict"));
    const after = await status("evict");
    expect(after).toMatchObject({ activeUplink: "isp1", generation: before.generation });
    expect(after.agents.map((a) => a.id)).toEqual(["sbc1", "sbc2"]);
    expect((await events("evict")).filter((e) => e.kind === "switch")).toHaveLength(1);
    // The object restarted on the request at 4.9 s: after a full downAfterMs from then, the primary is down.
    at(7_899);
    await sbc2.beat("isp2");
    expect((await status("evict")).activeUplink).toBe("isp1");
    at(7_900);
    await sbc2.beat("isp2");
    expect((await status("evict")).activeUplink).toBe("isp2");
  });
});

describe("tunnels and attribution", () => {
  it("cluster mode: one elected restarter, only after every live server applied the switch", async () => {
    await createSite("tun");
    const sbc1 = await TestAgent.enroll("tun", "sbc1", "probe", { uplink: "isp1" });
    const sbc2 = await TestAgent.enroll("tun", "sbc2", "probe", { uplink: "isp2" });
    const srvA = await TestAgent.enroll("tun", "srv-a", "server", { tunnelRestarter: true });
    const srvB = await TestAgent.enroll("tun", "srv-b", "server", { tunnelRestarter: true });
    const srvC = await TestAgent.enroll("tun", "srv-c", "server");
    const servers = [srvA, srvB, srvC];
    await sbc1.beat("isp1");
    await sbc2.beat("isp2");
    for (const s of servers) {
      s.appliedGeneration = 1;
      await s.beat("isp2");
    }
    at(2_000);
    await sbc2.beat("isp2");
    for (const s of servers) await s.beat("isp2");
    at(3_000);
    expect(await sbc2.beat("isp2")).toMatchObject({ generation: 2, activeUplink: "isp2", restartTunnels: false });
    srvA.appliedGeneration = 2;
    srvB.appliedGeneration = 2;
    expect(await srvA.beat("isp2")).toMatchObject({ restartTunnels: false });
    expect(await srvB.beat("isp2")).toMatchObject({ restartTunnels: false });
    srvC.appliedGeneration = 2;
    expect(await srvC.beat("isp2")).toMatchObject({ restartTunnels: false });
    expect(await srvA.beat("isp2")).toMatchObject({ generation: 2, restartTunnels: true });
    expect(await srvB.beat("isp2")).toMatchObject({ restartTunnels: false });
    srvA.tunnelGeneration = 2;
    await srvA.beat("isp2");
    const s = await status("tun");
    expect(s.tunnels).toMatchObject({ mode: "cluster", generation: 2, restarter: "srv-a", done: true });
    const kinds = (await events("tun")).map((e) => e.kind);
    expect(kinds).toEqual(
      expect.arrayContaining(["tunnel-restart-requested", "tunnels-restarted", "tunnel-restart-done"]),
    );
  });

  it("cluster mode: restarts after maxWaitMs even when a server never applies", async () => {
    await createSite("tun-wait", twoUplinks({}, { tunnels: { restart: "cluster", maxWaitMs: 5_000 } }));
    const sbc1 = await TestAgent.enroll("tun-wait", "sbc1", "probe", { uplink: "isp1" });
    const sbc2 = await TestAgent.enroll("tun-wait", "sbc2", "probe", { uplink: "isp2" });
    const srvA = await TestAgent.enroll("tun-wait", "srv-a", "server", { tunnelRestarter: true });
    const stuck = await TestAgent.enroll("tun-wait", "srv-stuck", "server");
    await sbc1.beat("isp1");
    for (const t of [0, 1_000, 2_000, 3_000]) {
      at(t);
      await sbc2.beat("isp2");
      await stuck.beat("isp2");
    }
    srvA.appliedGeneration = 2;
    expect(await srvA.beat("isp2")).toMatchObject({ generation: 2, restartTunnels: false });
    at(8_000);
    await stuck.beat("isp2");
    await runDurableObjectAlarm(stubFor("tun-wait"));
    expect(await srvA.beat("isp2")).toMatchObject({ restartTunnels: true });
  });

  it("per-server mode tells every server to restart after a switch; none tells nobody", async () => {
    for (const [name, mode, expected] of [
      ["tun-each", "per-server", true],
      ["tun-none", "none", false],
    ] as const) {
      at(0);
      await createSite(name, twoUplinks({}, { tunnels: { restart: mode, maxWaitMs: 30_000 } }));
      const sbc1 = await TestAgent.enroll(name, "sbc1", "probe", { uplink: "isp1" });
      const sbc2 = await TestAgent.enroll(name, "sbc2", "probe", { uplink: "isp2" });
      const srv = await TestAgent.enroll(name, "srv", "server");
      await sbc1.beat("isp1");
      // A first choice restarts nothing.
      expect(await srv.beat("isp2")).toMatchObject({ generation: 1, restartTunnels: false });
      at(3_000);
      expect(await sbc2.beat("isp2")).toMatchObject({ generation: 2, activeUplink: "isp2" });
      expect(await srv.beat("isp2")).toMatchObject({ generation: 2, restartTunnels: expected });
    }
  });

  it("flags a server whose isp1 heartbeats arrive through isp2, and does not count them for isp1", async () => {
    await createSite("misroute");
    const sbc1 = await TestAgent.enroll("misroute", "sbc1", "probe", { uplink: "isp1" });
    const sbc2 = await TestAgent.enroll("misroute", "sbc2", "probe", { uplink: "isp2" });
    const srv = await TestAgent.enroll("misroute", "srv", "server");
    await sbc1.beat("isp1", { ip: "198.51.100.1" });
    await sbc2.beat("isp2", { ip: "198.51.100.5" });
    for (let t = 1_000; t <= 3_000; t += 1_000) {
      at(t);
      await sbc2.beat("isp2", { ip: "198.51.100.5" });
      await srv.beat("isp1", { ip: "198.51.100.5" });
    }
    const s = await status("misroute");
    expect(s.activeUplink).toBe("isp2");
    expect(s.uplinks[0]).toMatchObject({ id: "isp1", state: "down", observedIp: "198.51.100.1" });
    expect(s.agents.find((a) => a.id === "srv")!.misroutedUplinks).toEqual(["isp1"]);
    const e = (await events("misroute")).filter((x) => x.kind === "misrouted");
    expect(e).toHaveLength(1);
    expect(e[0]!.message).toContain("arrive through isp2");
  });
});

describe("metrics", () => {
  it("exposes the status in Prometheus text format", async () => {
    await createSite("prom");
    const sbc1 = await TestAgent.enroll("prom", "sbc1", "probe", { uplink: "isp1" });
    await sbc1.beat("isp1", { extra: { rttEdgeMs: 12.5, rttGatewayMs: 0.75 } });
    const r = await call("GET", "/v1/sites/prom/metrics");
    expect(r.headers.get("content-type")).toContain("text/plain");
    // A real parser of the exposition format, not a pattern of ours.
    const families = parsePrometheusTextFormat(r.text);
    const byName = new Map(families.map((f) => [f.name, f]));
    expect([...byName.keys()].sort()).toEqual([
      "wanwatch_agent_applied_generation",
      "wanwatch_agent_clock_offset_seconds",
      "wanwatch_agent_heartbeat_age_seconds",
      "wanwatch_edge_alarm_runs_total",
      "wanwatch_edge_alarms_set_total",
      "wanwatch_edge_sqlite_rows_read_total",
      "wanwatch_edge_sqlite_rows_written_total",
      "wanwatch_edge_websocket_messages_total",
      "wanwatch_last_switch_timestamp_seconds",
      "wanwatch_notification_attempts_failed_total",
      "wanwatch_notification_last_error_timestamp_seconds",
      "wanwatch_notification_next_attempt_timestamp_seconds",
      "wanwatch_notifications_delivered_total",
      "wanwatch_notifications_failed_total",
      "wanwatch_notifications_pending",
      "wanwatch_notifications_retrying",
      "wanwatch_switches_total",
      "wanwatch_uplink_active",
      "wanwatch_uplink_data_cap_megabytes",
      "wanwatch_uplink_data_used_megabytes",
      "wanwatch_uplink_degraded",
      "wanwatch_uplink_gateway_rtt_milliseconds",
      "wanwatch_uplink_loss_ratio",
      "wanwatch_uplink_path_rtt_milliseconds",
      "wanwatch_uplink_rtt_milliseconds",
      "wanwatch_uplink_up",
    ]);
    for (const f of families) {
      expect(f.help.length, f.name).toBeGreaterThan(10);
      expect(["GAUGE", "COUNTER"]).toContain(f.type);
      for (const m of f.metrics) {
        expect(Number.isFinite(Number(m.value)), `${f.name} ${m.value}`).toBe(true);
        expect(m.labels?.site).toBe("prom");
      }
    }
    expect(byName.get("wanwatch_switches_total")!.type).toBe("COUNTER");
    expect(byName.get("wanwatch_agent_heartbeat_age_seconds")!.metrics).toEqual([
      { labels: { site: "prom", agent: "sbc1", role: "probe" }, value: "0" },
    ]);
    const lines = r.text.trim().split("\n");
    expect(lines).toContain('wanwatch_uplink_active{site="prom",uplink="isp1"} 1');
    expect(lines).toContain('wanwatch_uplink_up{site="prom",uplink="isp2"} -1');
    expect(lines).toContain('wanwatch_uplink_rtt_milliseconds{site="prom",uplink="isp1"} 12.5');
    expect(lines).toContain('wanwatch_uplink_gateway_rtt_milliseconds{site="prom",uplink="isp1"} 0.75');
    expect((await status("prom")).uplinks[0]).toMatchObject({ id: "isp1", rttMs: 12.5, gatewayRttMs: 0.75 });
  });

  it("counts the object's billable work: rows read and written, alarms, WebSocket messages", async () => {
    const usage = async () => {
      const lines = (await call("GET", "/v1/sites/billed/metrics")).text.split("\n");
      const value = (name: string) => Number(lines.find((l) => l.startsWith(`wanwatch_edge_${name}{`))!.split(" ")[1]);
      return {
        read: value("sqlite_rows_read_total"),
        written: value("sqlite_rows_written_total"),
        set: value("alarms_set_total"),
        runs: value("alarm_runs_total"),
        messages: value("websocket_messages_total"),
      };
    };
    await createSite("billed");
    const sbc1 = await TestAgent.enroll("billed", "sbc1", "probe", { uplink: "isp1" });
    const afterEnrol = await usage();
    // The site's config, decision, agent row and events were written; the wake read the schema.
    expect(afterEnrol.written).toBeGreaterThanOrEqual(4);
    expect(afterEnrol.read).toBeGreaterThan(0);
    expect(afterEnrol.set).toBe(1);
    const res = await sbc1.connect("isp1");
    const ch = new Channel(res.webSocket!, sbc1);
    for (let i = 0; i < 3; i++) {
      await ch.send("isp1");
      await ch.until(
        () => ch.messages.filter((m) => m.type === "directive" && m.ackSeq !== null).length > i,
        "an answer",
      );
    }
    expect((await usage()).messages).toBe(3);
    expect(await runDurableObjectAlarm(stubFor("billed"))).toBe(true);
    expect((await usage()).runs).toBe(afterEnrol.runs + 1);
  });
});

describe("storage upgrades", () => {
  it("a site stored by schema 1 is migrated on wake to the newest schema and keeps its observations", async () => {
    await createSite("old");
    const sbc1 = await TestAgent.enroll("old", "sbc1", "probe", { uplink: "isp1" });
    await sbc1.beat("isp1", { ip: "198.51.100.1" });
    // Put the storage back the way schema 1 left it.
    await runInDurableObject(stubFor("old"), (_i, state) => {
      state.storage.sql.exec("ALTER TABLE uplink_observations DROP COLUMN gateway_rtt_ms");
      state.storage.sql.exec("ALTER TABLE uplink_observations DROP COLUMN ip6");
      state.storage.sql.exec("DROP INDEX events_kind_at");
      state.storage.sql.exec("DROP TABLE outbox");
      state.storage.sql.exec("DROP TABLE notify_targets");
      state.storage.sql.exec("ALTER TABLE agents DROP COLUMN previous_key");
      state.storage.sql.exec("ALTER TABLE agents DROP COLUMN previous_until");
      state.storage.sql.exec("DROP TABLE enrolment_tokens");
      state.storage.sql.exec("DROP TABLE data_use");
      state.storage.sql.exec("DROP TABLE data_counters");
      state.storage.sql.exec("UPDATE schema_version SET version = 1");
    });
    await evictDurableObject(stubFor("old"));
    const s = await status("old");
    expect(s.uplinks[0]).toMatchObject({ id: "isp1", observedIp: "198.51.100.1", gatewayRttMs: null });
    const version = await runInDurableObject(
      stubFor("old"),
      (_i, state) => state.storage.sql.exec<{ version: number }>("SELECT version FROM schema_version").one().version,
    );
    expect(version).toBe(SCHEMA_VERSION);
    const indexes = await runInDurableObject(stubFor("old"), (_i, state) =>
      state.storage.sql
        .exec<{ name: string }>("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'events'")
        .toArray(),
    );
    expect(indexes.map((i) => i.name)).toContain("events_kind_at");
    expect(Object.keys(await storedRows("old"))).toEqual(expect.arrayContaining(["data_use", "data_counters"]));
    await sbc1.beat("isp1", { ip: "198.51.100.1", extra: { rttGatewayMs: 1.5 } });
    expect((await status("old")).uplinks[0]!.gatewayRttMs).toBe(1.5);
  });
});
