// Notifications from the real local edge (workerd) to a real HTTP receiver on this machine:
// formats per kind, delivery recorded in the event log, retries with backoff through the alarm,
// coalescing while the receiver is down, and nothing lost across an edge restart; a failing
// receiver on the timeline and in the status within seconds; `wanwatch site notify --test`.
import { mkdtempSync, rmSync } from "node:fs";
import { createServer, type IncomingHttpHeaders, type Server } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { SiteEvent, SiteStatus } from "#shared";
import { SimAgent, type World } from "../../demo/sim-agent.ts";
import { buildBundle, wanwatch } from "../../lab/agent-process.ts";
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
type Truthy<T> = Exclude<T, false | 0 | "" | null | undefined>;

async function until<T>(pick: () => T | Promise<T>, what: string, ms = 20_000): Promise<Truthy<T>> {
  for (const end = Date.now() + ms; ; await sleep(100)) {
    const v = await pick();
    if (v) return v as Truthy<T>;
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
  const cliAt = (site: string) => ["--edge", edge.url, "--site", site];
  const cliEnv = () => ({ env: { WANWATCH_ADMIN_TOKEN: edge.adminToken } });
  const status = (site: string) => api("GET", `/v1/sites/${site}/status`) as Promise<SiteStatus>;
  const events = (site: string) => api("GET", `/v1/sites/${site}/events?limit=500`) as Promise<SiteEvent[]>;

  async function site(id: string, notify: { kind: string; url: string }[], failbackAfterMs = 60_000) {
    await api("PUT", `/v1/sites/${id}`, {
      uplinks: [
        { id: "isp1", priority: 1, name: "Fiber" },
        { id: "isp2", priority: 2, name: "LTE" },
      ],
      policy: { heartbeatMs: 300, downAfterMs: 900, failbackAfterMs, minDwellMs: 0 },
      tunnels: { restart: "none" },
      notify,
    });
    const hooks = { onApply: () => undefined, onRestart: () => undefined };
    for (const [agent, uplink] of [
      ["sbc1", "isp1"],
      ["sbc2", "isp2"],
    ] as const) {
      const { secret } = await api("POST", `/v1/sites/${id}/agents`, { id: agent, role: "probe", uplink });
      agents.push(await SimAgent.create(edge.url, id, agent, [uplink], secret, hooks));
    }
    await until(async () => (await status(id)).uplinks.every((u) => u.state === "up"), `${id}: both uplinks up`);
  }

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "wanwatch-notify-"));
    await receiver.start();
    buildBundle();
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
      await until(
        () => receiver.delivered("/hook").find((r) => JSON.parse(r.body).trigger === "failover"),
        "the failover webhook",
      );
      const hook = JSON.parse(receiver.delivered("/hook").find((r) => JSON.parse(r.body).trigger === "failover")!.body);
      expect(hook).toMatchObject({
        site: "notify-kinds",
        trigger: "failover",
        severity: "bad",
        replaced: 0,
        event: { kind: "switch", data: { from: "isp1", to: "isp2", reason: "failover" } },
      });
      expect(hook.id).toBe(`notify-kinds:${hook.event.seq}`);

      const slack = await until(
        () =>
          receiver
            .delivered("/slack/T000/B000/XXXX")
            .map((r) => JSON.parse(r.body).text)
            .find((t: string) => t.includes("failover")),
        "slack",
      );
      expect(slack).toBe(`wanwatch notify-kinds: failover: isp1 → isp2 (generation 2)`);
      const discord = await until(
        () =>
          receiver
            .delivered("/discord/123/abc")
            .map((r) => JSON.parse(r.body))
            .find((b) => b.content.includes("failover")),
        "discord",
      );
      expect(discord.allowed_mentions).toEqual({ parse: [] });
      const ntfy = await until(() => receiver.delivered(secretPath).find((r) => r.body.includes("failover")), "ntfy");
      expect(ntfy.headers).toMatchObject({ title: "wanwatch notify-kinds: failover", priority: "4", tags: "warning" });
      await until(
        () => receiver.delivered("/hook").find((r) => JSON.parse(r.body).trigger === "uplink-down"),
        "uplink-down webhook",
      );

      const log = await until(async () => {
        const e = await events("notify-kinds");
        return e.filter((x) => x.kind === "notify" && x.data?.trigger === "failover").length === 4 && e;
      }, "four delivery records");
      const host = new URL(receiver.url).host;
      expect(
        log
          .filter((e) => e.kind === "notify" && e.data?.trigger === "failover")
          .map((e) => e.message)
          .sort(),
      ).toEqual(
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
    expect(record.message).toMatch(
      /^notified webhook \(127\.0\.0\.1:\d+\) of failback: delivered \(HTTP 200, attempt \d+\)$/,
    );
    console.log(
      `[notify] receiver refused ${refusedBeforeRecovery} attempts (503), edge restarted, delivered on attempt ${record.data!.attempts}`,
    );
  });

  it("gives up at once on a receiver that says the address is wrong, and says so", async () => {
    receiver.answer.set("/gone", 404);
    await site("notify-gone", [{ kind: "webhook", url: `${receiver.url}/gone` }]);
    await api("POST", "/v1/sites/notify-gone/override", { uplink: "isp2", forSeconds: 600, reason: "test" });
    const failed = await until(
      async () => (await events("notify-gone")).find((e) => e.kind === "notify-failed"),
      "the failure record",
    );
    expect(failed.message).toMatch(/^could not notify webhook \(127\.0\.0\.1:\d+\) of switch: HTTP 404, not retried$/);
    await sleep(1_500);
    expect(receiver.got.filter((r) => r.path === "/gone")).toHaveLength(1);
  });

  it("puts a receiver that fails on the timeline and in the status within seconds, then counts the delivery", async () => {
    receiver.answer.set("/down", 503);
    await site("notify-down", [{ kind: "webhook", url: `${receiver.url}/down` }]);
    const asked = Date.now();
    await api("POST", "/v1/sites/notify-down/override", { uplink: "isp2", forSeconds: 600, reason: "test" });
    const retrying = await until(
      async () => (await events("notify-down")).find((e) => e.kind === "notify-retrying"),
      "the first failure on the timeline",
      5_000,
    );
    const host = new URL(receiver.url).host;
    expect(retrying.message).toMatch(
      new RegExp(
        `^could not notify webhook \\(${host.replace(/\./g, "\\.")}\\) of switch: HTTP 503; retrying \\(next attempt at \\S+Z, up to 9 attempts\\)$`,
      ),
    );
    console.log(
      `[notify] first failed attempt on the timeline ${retrying.at - asked} ms after the switch was asked for`,
    );
    const waiting = (await status("notify-down")).notify;
    expect(waiting.pending).toBe(1);
    expect(waiting.targets[0]).toMatchObject({
      target: `webhook (${host})`,
      pending: 1,
      retrying: 1,
      lastError: "HTTP 503",
      delivered: 0,
    });
    await until(() => receiver.got.filter((r) => r.path === "/down").length >= 3, "two retries");
    expect((await events("notify-down")).filter((e) => e.kind === "notify-retrying")).toHaveLength(1);
    const shown = await wanwatch(["site", "status", ...cliAt("notify-down")], cliEnv());
    expect(shown.code).toBe(0);
    expect(shown.stdout).toMatch(
      new RegExp(
        `\\nwebhook \\(${host.replace(/\./g, "\\.")}\\)\\s+1 \\(1 retrying\\)\\s+\\S+Z\\s+0\\s+0\\s+HTTP 503 \\(\\d+s ago\\)\\n?`,
      ),
    );

    // isp1 was never down: back on it once it has been up for the hold-down, and the CLI says when.
    const cleared = await wanwatch(["site", "override", "--clear", ...cliAt("notify-down")], cliEnv());
    expect(cleared.stdout.trim()).toMatch(
      /^site notify-down: override cleared; stays on isp2 until isp1 has been up for the failback hold-down \(60 s\): back on isp1 at \S+Z, in \d+ s \(generation 2\)$/,
    );

    receiver.answer.set("/down", 200);
    const done = await until(async () => {
      const n = (await status("notify-down")).notify;
      return n.pending === 0 && n;
    }, "the delivery");
    expect(done.targets[0]).toMatchObject({
      pending: 0,
      retrying: 0,
      delivered: 1,
      failed: 0,
      lastError: "HTTP 503",
      nextAttemptAt: null,
    });
    expect(done.targets[0]!.failedAttempts).toBeGreaterThanOrEqual(3);
  });

  it("`wanwatch site notify --test` sends a test to every target now and prints each result; exit 1 when one fails", async () => {
    const secret = "/ntfy/topic-secret-77c1";
    receiver.answer.set("/test-gone", 404);
    await api("PUT", "/v1/sites/notify-cli", {
      uplinks: [
        { id: "isp1", priority: 1 },
        { id: "isp2", priority: 2 },
      ],
      notify: [
        { kind: "webhook", url: `${receiver.url}/test-hook` },
        { kind: "ntfy", url: `${receiver.url}${secret}` },
      ],
    });
    const cli = (site: string) => wanwatch(["site", "notify", "--test", ...cliAt(site)], cliEnv());
    const before = await events("notify-cli");
    const r = await cli("notify-cli");
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const host = new URL(receiver.url).host;
    const lines = r.stdout.trim().split("\n");
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(
      new RegExp(`^✓ webhook \\(${host.replace(/\./g, "\\.")}\\): delivered \\(HTTP 200\\) in \\d+ ms$`),
    );
    expect(lines[1]).toMatch(/^✓ ntfy \(127\.0\.0\.1:\d+\): delivered \(HTTP 200\) in \d+ ms$/);
    expect(r.stdout).not.toContain("topic-secret");
    const hook = JSON.parse(receiver.delivered("/test-hook")[0]!.body);
    expect(hook).toMatchObject({ site: "notify-cli", trigger: "test", severity: "info" });
    expect(receiver.delivered(secret)[0]!.headers).toMatchObject({ title: "wanwatch notify-cli: test" });
    // The timeline gains one line, and nothing is queued.
    const after = await events("notify-cli");
    expect(after.slice(0, after.length - before.length).map((e) => e.kind)).toEqual(["notify-test"]);
    expect((await status("notify-cli")).notify.pending).toBe(0);

    // Again at once: refused, so that the endpoint cannot hammer a receiver.
    const again = await cli("notify-cli");
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/a test notification was sent less than 30 s ago: try again in \d+ s/);
    expect(receiver.got.filter((x) => x.path === "/test-hook")).toHaveLength(1);

    await api("PUT", "/v1/sites/notify-cli-bad", {
      uplinks: [
        { id: "isp1", priority: 1 },
        { id: "isp2", priority: 2 },
      ],
      notify: [
        { kind: "webhook", url: `${receiver.url}/test-hook` },
        { kind: "webhook", url: `${receiver.url}/test-gone` },
        { kind: "slack", url: "http://127.0.0.1:9/services/T0/B0/XXXX" },
      ],
    });
    const bad = await cli("notify-cli-bad");
    expect(bad.code).toBe(1);
    const badLines = bad.stdout.trim().split("\n");
    expect(badLines[0]).toMatch(/^✓ webhook \(127\.0\.0\.1:\d+\): delivered/);
    expect(badLines[1]).toMatch(/^✗ webhook \(127\.0\.0\.1:\d+\) #2: HTTP 404 in \d+ ms$/);
    expect(badLines[2]).toMatch(/^✗ slack \(127\.0\.0\.1:9\): could not connect \(\w+\) in \d+ ms$/);
    expect(bad.stdout).not.toContain("XXXX");
  });
});
