// Notifications from the real local edge (workerd) to a real HTTP receiver on this machine:
// formats per kind, delivery recorded in the event log, retries with backoff through the alarm,
// coalescing while the receiver is down, and nothing lost across an edge restart.
import { mkdtempSync, rmSync } from "node:fs";
import { createServer, type IncomingHttpHeaders, type Server } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { SiteEvent, SiteStatus } from "../../shared/src/index.ts";
import { SimAgent, type World } from "../../demo/sim-agent.ts";
import { freePort, startLocalEdge, type LocalEdge } from "../../tools/local-edge.ts";

interface Received {
  path: string;
  headers: IncomingHttpHeaders;
  body: string;
  status: number;
}

/** A receiver that records every POST and answers with the status its path is set to (200 by default). */
class Receiver {
  readonly got: Received[] = [];
  readonly answer = new Map<string, number>();
  private server!: Server;
  url = "";

  async start(): Promise<void> {
    this.server = createServer((req, res) => {
      let body = "";
      req.on("data", (c) => (body += c));
      req.on("end", () => {
        const status = this.answer.get(req.url!) ?? 200;
        this.got.push({ path: req.url!, headers: req.headers, body, status });
        res.writeHead(status).end();
      });
    });
    const port = await freePort();
    await new Promise<void>((ok) => this.server.listen(port, "127.0.0.1", ok));
    this.url = `http://127.0.0.1:${port}`;
  }

  delivered(path: string) {
    return this.got.filter((r) => r.path === path && r.status < 300);
  }

  stop(): Promise<void> {
    return new Promise((ok) => this.server.close(() => ok()));
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function until<T>(pick: () => T | Promise<T>, what: string, ms = 20_000): Promise<NonNullable<T>> {
  for (const end = Date.now() + ms; ; await sleep(100)) {
    const v = await pick();
    if (v) return v as NonNullable<T>;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
  }
}

describe("notifications to a real receiver", () => {
  let dir: string;
  let edge: LocalEdge;
  const receiver = new Receiver();
  const world: World = { up: { isp1: true, isp2: true }, publicIp: { isp1: "203.0.113.1", isp2: "203.0.113.2" } };
  const agents: SimAgent[] = [];
  let beating = true;
  let loop: Promise<void> = Promise.resolve();

  const api = (method: string, path: string, body?: unknown) => edge.api(method, path, body);
  const status = (site: string) => api("GET", `/v1/sites/${site}/status`) as Promise<SiteStatus>;
  const events = (site: string) => api("GET", `/v1/sites/${site}/events?limit=500`) as Promise<SiteEvent[]>;

  async function site(id: string, notify: { kind: string; url: string }[], failbackAfterMs = 60_000) {
    await api("PUT", `/v1/sites/${id}`, {
      uplinks: [{ id: "isp1", priority: 1, name: "Fiber" }, { id: "isp2", priority: 2, name: "LTE" }],
      policy: { heartbeatMs: 300, downAfterMs: 900, failbackAfterMs, minDwellMs: 0 },
      tunnels: { restart: "none" },
      notify,
    });
    const hooks = { onApply: () => undefined, onRestart: () => undefined };
    for (const [agent, uplink] of [["sbc1", "isp1"], ["sbc2", "isp2"]] as const) {
      const { secret } = await api("POST", `/v1/sites/${id}/agents`, { id: agent, role: "probe", uplink });
      agents.push(await SimAgent.create(edge.url, id, agent, [uplink], secret, hooks));
    }
    await until(async () => (await status(id)).uplinks.every((u) => u.state === "up"), `${id}: both uplinks up`);
  }

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "wanwatch-notify-"));
    await receiver.start();
    edge = await startLocalEdge({ stateDir: join(dir, "edge"), vars: { NOTIFY_RETRY_BASE_MS: "100" } });
    // The probes heartbeat on their own; an edge restart in a test only costs a few of them.
    loop = (async () => {
      while (beating) {
        await Promise.all(agents.map((a) => a.beat(world).catch(() => undefined)));
        await sleep(300);
      }
    })();
  }, 90_000);

  afterAll(async () => {
    beating = false;
    await loop;
    await edge?.stop();
    await receiver.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("tells every kind of target about a failover in its own format, and records each delivery", async () => {
    const secretPath = "/ntfy/wanwatch-office-7f3a9";
    await site("notify-kinds", [
      { kind: "webhook", url: `${receiver.url}/hook` },
      { kind: "slack", url: `${receiver.url}/slack/T000/B000/XXXX` },
      { kind: "discord", url: `${receiver.url}/discord/123/abc` },
      { kind: "ntfy", url: `${receiver.url}${secretPath}` },
    ]);
    world.up.isp1 = false;
    try {
      await until(() => receiver.delivered("/hook").find((r) => JSON.parse(r.body).trigger === "failover"), "the failover webhook");
      const hook = JSON.parse(receiver.delivered("/hook").find((r) => JSON.parse(r.body).trigger === "failover")!.body);
      expect(hook).toMatchObject({ site: "notify-kinds", trigger: "failover", severity: "bad", replaced: 0, event: { kind: "switch", data: { from: "isp1", to: "isp2", reason: "failover" } } });
      expect(hook.id).toBe(`notify-kinds:${hook.event.seq}`);

      const slack = await until(() => receiver.delivered("/slack/T000/B000/XXXX").map((r) => JSON.parse(r.body).text).find((t: string) => t.includes("failover")), "slack");
      expect(slack).toBe(`wanwatch notify-kinds: failover: isp1 → isp2 (generation 2)`);
      const discord = await until(() => receiver.delivered("/discord/123/abc").map((r) => JSON.parse(r.body)).find((b) => b.content.includes("failover")), "discord");
      expect(discord.allowed_mentions).toEqual({ parse: [] });
      const ntfy = await until(() => receiver.delivered(secretPath).find((r) => r.body.includes("failover")), "ntfy");
      expect(ntfy.headers).toMatchObject({ title: "wanwatch notify-kinds: failover", priority: "4", tags: "warning" });
      await until(() => receiver.delivered("/hook").find((r) => JSON.parse(r.body).trigger === "uplink-down"), "uplink-down webhook");

      const log = await until(async () => {
        const e = await events("notify-kinds");
        return e.filter((x) => x.kind === "notify" && x.data?.trigger === "failover").length === 4 && e;
      }, "four delivery records");
      const host = new URL(receiver.url).host;
      expect(log.filter((e) => e.kind === "notify" && e.data?.trigger === "failover").map((e) => e.message).sort()).toEqual(
        ["discord", "ntfy", "slack", "webhook"].map((k) => `notified ${k} (${host}) of failover: delivered (HTTP 200)`),
      );
      // A target's URL may hold a secret: no event names more than its host.
      expect(JSON.stringify(log)).not.toContain("wanwatch-office-7f3a9");
      expect(JSON.stringify(log)).not.toContain("XXXX");
    } finally {
      world.up.isp1 = true;
    }
  });

  it("retries a failing receiver, delivers only the latest change on a topic, once, and loses nothing across an edge restart", async () => {
    // A short hold-down, so that ending the override returns to isp1 at once.
    await site("notify-retry", [{ kind: "webhook", url: `${receiver.url}/flaky` }], 500);
    receiver.answer.set("/flaky", 503);
    const switches = () => receiver.got.filter((r) => r.path === "/flaky");

    await api("POST", "/v1/sites/notify-retry/override", { uplink: "isp2", forSeconds: 600, reason: "maintenance" });
    await until(() => switches().length >= 2, "two refused attempts");
    const firstId = JSON.parse(switches()[0]!.body).id;
    expect(new Set(switches().map((r) => JSON.parse(r.body).id))).toEqual(new Set([firstId]));

    // A second switch on the same topic while the first is undelivered replaces it.
    await api("DELETE", "/v1/sites/notify-retry/override");
    await until(async () => (await status("notify-retry")).activeUplink === "isp1", "back on isp1");

    await edge.restart();
    const refusedBeforeRecovery = switches().length;
    receiver.answer.set("/flaky", 200);
    const ok = await until(() => receiver.delivered("/flaky")[0], "the change delivered after the restart", 45_000);
    const body = JSON.parse(ok.body);
    // The override's switch never reached anyone; the return to isp1 did, counting it.
    expect(body).toMatchObject({ trigger: "failback", replaced: 1, event: { data: { from: "isp2", to: "isp1" } } });
    expect(body.id).not.toBe(firstId);
    await sleep(2_000);
    expect(receiver.delivered("/flaky")).toHaveLength(1);

    const record = (await events("notify-retry")).find((e) => e.kind === "notify")!;
    expect(record.data!.attempts).toBeGreaterThan(1);
    expect(record.message).toMatch(/^notified webhook \(127\.0\.0\.1:\d+\) of failback: delivered \(HTTP 200, attempt \d+\)$/);
    console.log(`[notify] receiver refused ${refusedBeforeRecovery} attempts (503), edge restarted, delivered on attempt ${record.data!.attempts}`);
  });

  it("gives up at once on a receiver that says the address is wrong, and says so", async () => {
    receiver.answer.set("/gone", 404);
    await site("notify-gone", [{ kind: "webhook", url: `${receiver.url}/gone` }]);
    await api("POST", "/v1/sites/notify-gone/override", { uplink: "isp2", forSeconds: 600, reason: "test" });
    const failed = await until(async () => (await events("notify-gone")).find((e) => e.kind === "notify-failed"), "the failure record");
    expect(failed.message).toMatch(/^could not notify webhook \(127\.0\.0\.1:\d+\) of switch: HTTP 404, not retried$/);
    await sleep(1_500);
    expect(receiver.got.filter((r) => r.path === "/gone")).toHaveLength(1);
  });
});
