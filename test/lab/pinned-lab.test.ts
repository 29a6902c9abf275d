// Pinned tunnel replicas in the lab (lab/site.ts with `pinned`): each server runs one stand-in
// tunnel per uplink, bound to that uplink's source address, and its agent has
// `tunnels.backend: pinned`; the site restarts no tunnels on a switch (`tunnels.restart: none`).
// What is asserted is what the tunnel endpoint sees: each replica's source public address, its
// process (it introduces itself), whether its connection closed, its keepalives arriving.
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { SiteStatus } from "#shared";
import { readStatus } from "../../agent/src/state/files.ts";
import { ROOT } from "../../lab/agent-process.ts";
import { labUnavailable, waitUntil } from "../../lab/netns.ts";
import { labServers, LabSite, settled } from "../../lab/site.ts";
import { publicAddress } from "../../lab/topology.ts";

const why = labUnavailable();
const POLICY = { heartbeatMs: 500, downAfterMs: 1_500, failbackAfterMs: 4_000, minDwellMs: 0 };
const SERVERS = ["srv1", "srv2"];
const REPLICAS = SERVERS.flatMap((s) => [`${s}/isp1`, `${s}/isp2`]);
let site: LabSite;

beforeAll(async () => {
  if (why) return;
  const servers = labServers();
  site = await LabSite.start({
    dir: join(ROOT, ".state", `lab-pinned-${process.pid}`),
    policy: POLICY,
    servers,
    pinned: true,
    tunnelKeepaliveMs: 100,
  });
}, 120_000);

afterAll(async () => {
  await site?.destroy();
}, 60_000);

const on = (uplink: string) => (s: SiteStatus) => s.activeUplink === uplink && settled(s, SERVERS);
/** Each replica's latest process, and the address it connected from, as the endpoint saw it. */
const latest = () => new Map(site.tunnelHellos().map((h) => [h.name, h]));
/** Per-uplink policy routing rules of a server (priority 1101 for isp1, 1102 for isp2). */
const rules = async (server: string) =>
  (await site.server(server).ns.exec(["ip", "-4", "rule", "show"]))
    .split("\n")
    .filter((l) => /^110[12]:/.test(l))
    .map((l) => l.replace(/\s+/g, " ").trim());

describe.skipIf(why)(`pinned tunnel replicas in the lab${why ? ` — skipped: ${why}` : ""}`, () => {
  it("one replica per uplink and server, each connected from its own uplink's public address", async () => {
    await site.until(on("isp1"), "everyone on isp1", 40_000);
    await waitUntil(() => REPLICAS.every((r) => latest().has(r)), "every replica at the endpoint", 20_000);
    for (const [name, h] of latest()) expect(h.remote, name).toBe(publicAddress(name.endsWith("isp1") ? 1 : 2));
    const s = await site.status();
    expect(s.tunnels.mode).toBe("none");
  });

  it("a cut of isp1: the isp2 replicas stay connected and nothing is restarted; isp1's return restarts only isp1's replicas, through isp1", async () => {
    const before = latest();
    const rulesBefore = await Promise.all(SERVERS.map(rules));
    for (const r of rulesBefore) expect(r).toHaveLength(2);

    const cut = Date.now();
    await site.lab.cut(1);
    await site.until(on("isp2"), "failover to isp2", 30_000);
    // A few keepalives' worth after the switch: the isp2 replicas' traffic keeps arriving.
    await new Promise((r) => setTimeout(r, 1_000));
    const afterCut = site.tunnelTraffic().filter((t) => t.at >= cut);
    for (const srv of SERVERS) {
      const mine = afterCut.filter((t) => t.name === `${srv}/isp2`);
      expect(
        mine.some((t) => t.event === "data" && t.remote === publicAddress(2)),
        `${srv}/isp2 live after the cut`,
      ).toBe(true);
      expect(
        mine.filter((t) => t.event !== "data"),
        `${srv}/isp2 neither closed nor reconnected`,
      ).toEqual([]);
    }
    // Nothing restarted: no replica introduced itself again.
    expect(site.tunnelHellos().filter((h) => h.at >= cut)).toEqual([]);
    // The per-uplink routing that pins the replicas is still in place through the switch.
    expect(await Promise.all(SERVERS.map(rules))).toEqual(rulesBefore);

    const restored = Date.now();
    await site.lab.restore(1);
    await waitUntil(
      () => SERVERS.every((srv) => site.tunnelHellos().some((h) => h.at >= restored && h.name === `${srv}/isp1`)),
      "every isp1 replica reconnected after isp1 came back",
      20_000,
    );
    const back = site.tunnelHellos().filter((h) => h.at >= restored);
    // Only isp1's replicas were restarted (new processes), and they came in through isp1.
    expect(back.map((h) => h.name).sort()).toEqual(["srv1/isp1", "srv2/isp1"]);
    for (const h of back) {
      expect(h.remote).toBe(publicAddress(1));
      expect(h.pid).not.toBe(before.get(h.name)!.pid);
    }
    // The isp2 replicas' connections never closed, from before the cut until now.
    expect(site.tunnelTraffic().filter((t) => t.at >= cut && t.name.endsWith("/isp2") && t.event === "close")).toEqual(
      [],
    );
    // `wanwatch agent status` reads the same: isp1's replica restarted since the restore, isp2's never.
    const replicasOf = (srv: string) => {
      const r = readStatus(join(site.lab.dir, srv, "state"));
      return r.ok ? r.value.replicas : undefined;
    };
    for (const srv of SERVERS) {
      await waitUntil(
        () => (replicasOf(srv)?.isp1?.restartedAt ?? 0) >= restored,
        `${srv}'s status: isp1's replica restarted`,
      );
      expect(replicasOf(srv)?.isp2).toEqual({ restarting: false, restartedAt: null, lastError: null, retryAt: null });
    }
    // The failback restarts nothing either.
    await site.until(on("isp1"), "failback to isp1", 30_000);
    await new Promise((r) => setTimeout(r, 1_000));
    expect(site.tunnelHellos().filter((h) => h.at >= restored)).toHaveLength(2);
    expect(await Promise.all(SERVERS.map(rules))).toEqual(rulesBefore);
  });
});
