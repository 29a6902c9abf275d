// IPv6 heartbeats on the lab site: agents reach the edge by name (A and AAAA records), each router
// advertises its own /64, and every agent heartbeats through each uplink over IPv6 as well, bound
// to that uplink's address and pinned to it by its own rule, whichever uplink holds the default.
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { SiteStatus } from "#shared";
import { BUNDLE, NODE20, ROOT } from "../../lab/agent-process.ts";
import { dhcpUnavailable } from "../../lab/dhcp.ts";
import { labUnavailable, waitUntil } from "../../lab/netns.ts";
import { edgePort } from "../../agent/src/daemon/edge-address.ts";
import { labServers, LabSite, settled, TUNNEL_PORT } from "../../lab/site.ts";
import { EDGE_ADDRESS6, ipv6Ready, prefix6 } from "../../lab/topology.ts";

const why = labUnavailable() ?? dhcpUnavailable();
const POLICY = { heartbeatMs: 1_000, downAfterMs: 3_000, failbackAfterMs: 4_000, minDwellMs: 0 };
const SERVERS = ["srv1", "srv2"];
let site: LabSite;

beforeAll(async () => {
  if (why) return;
  const servers = labServers();
  site = await LabSite.start({
    dir: join(ROOT, ".state", `ipv6-heartbeats-lab-${process.pid}`),
    policy: POLICY,
    servers,
    edgeName: "edge.wanwatch.test",
  });
}, 120_000);

afterAll(async () => {
  await site?.destroy();
}, 60_000);

const agent = (s: SiteStatus, id: string) => s.agents.find((a) => a.id === id)!;
/** Per agent: the uplinks the edge hears it through over IPv6, and those it judged misrouted. */
const ipv6View = (s: SiteStatus) =>
  Object.fromEntries(s.agents.map((a) => [a.id, { ipv6: a.ipv6Uplinks, misrouted: a.misroutedUplinks }]));
const everywhere = {
  sbc1: { ipv6: ["isp1"], misrouted: [] },
  sbc2: { ipv6: ["isp2"], misrouted: [] },
  srv1: { ipv6: ["isp1", "isp2"], misrouted: [] },
  srv2: { ipv6: ["isp1", "isp2"], misrouted: [] },
};
const sameView = (want: object) => (s: SiteStatus) => JSON.stringify(ipv6View(s)) === JSON.stringify(want);

/** `wanwatch agent status` on a server: its uplink table's rows, by their first column. */
async function statusRows(server: string): Promise<Record<string, string>> {
  const out = await site
    .server(server)
    .ns.exec([NODE20, BUNDLE, "agent", "status", "--config", site.configPath(server)]);
  return Object.fromEntries(
    out
      .split("\n")
      .filter((l) => /^isp\d/.test(l))
      .map((l) => [l.split(/\s{2,}/)[0]!, l]),
  );
}

/** Where a TCP connection from `source` to `dst` (by default to the edge's port) would leave a server (`ip -6 route get`). */
async function leaves(
  server: string,
  dst: string,
  source: string,
  port = edgePort(site.agentEdge()),
): Promise<string | undefined> {
  const how = ["ipproto", "tcp", "dport", String(port)];
  const out = await site.server(server).ns.ip("-j", "-6", "route", "get", dst, "from", source, ...how);
  return (JSON.parse(out) as { dev?: string }[])[0]?.dev;
}

/** Each uplink's IPv6 channel of a server, as its agent logged it last: uplink → source address. */
function channels(server: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const l of site.log(server)) {
    if (l.msg === "IPv6 channel") out[l.uplink] = l.source;
    if (l.msg === "IPv6 channel closed" && !l.newSource) delete out[l.uplink];
  }
  return out;
}

describe.skipIf(why)(`IPv6 heartbeats in the lab${why ? ` — skipped: ${why}` : ""}`, () => {
  it("servers on both backends heartbeat over IPv6 through each uplink, each attributed to that uplink", async () => {
    const s = await site.until(
      (s) => s.activeUplink === "isp1" && settled(s, SERVERS) && sameView(everywhere)(s),
      "every agent heard over IPv6 through each of its uplinks",
      40_000,
    );
    expect(s.uplinks.map((u) => [u.id, u.ipv6])).toEqual([
      ["isp1", "heard"],
      ["isp2", "heard"],
    ]);
    for (const id of SERVERS) {
      const ch = channels(id);
      expect(Object.keys(ch).sort()).toEqual(["isp1", "isp2"]);
      for (const n of [1, 2] as const) {
        const source = ch[`isp${n}`]!;
        expect(source.startsWith(`${prefix6(n)}:`)).toBe(true);
        // Pinned to its uplink although IPv6's default route is isp1's — and only the agent's
        // connections to the edge: not another address, not another port of the edge's.
        expect(await leaves(id, EDGE_ADDRESS6, source)).toBe(`lan${n}`);
        expect(await leaves(id, "2001:db8:ff::99", source)).toBe("lan1");
        expect(await leaves(id, EDGE_ADDRESS6, source, TUNNEL_PORT)).toBe("lan1");
      }
      // `agent status` shows each IPv6 channel on a line of its own: its source, heard lately.
      const rows = await statusRows(id);
      expect(Object.keys(rows)).toEqual(["isp1", "isp1 (IPv6)", "isp2", "isp2 (IPv6)"]);
      for (const n of [1, 2] as const)
        expect(rows[`isp${n} (IPv6)`]).toMatch(
          new RegExp(`websocket\\s+\\d+s ago\\s+[\\d.]+ ms\\s+${ch[`isp${n}`]}\\s`),
        );
    }
    // A while later nothing was judged misrouted (each /64 is the one its probe heartbeats from),
    // and no channel was closed: a directive applied under NetworkManager (which drops and re-adds
    // lan2's advertised route for a moment) leaves them as they are.
    await new Promise((r) => setTimeout(r, 3_000));
    expect(ipv6View(await site.status())).toEqual(everywhere);
    for (const id of SERVERS) expect(site.log(id).filter((l) => l.msg === "IPv6 channel closed")).toEqual([]);
  });

  it("a cut of isp1: the IPv6 heartbeats through isp1 stop, isp2's go on; back after the restore", async () => {
    await site.lab.cut(1);
    try {
      const s = await site.until(
        (s) =>
          s.activeUplink === "isp2" &&
          settled(s, SERVERS) &&
          sameView({
            sbc1: { ipv6: [], misrouted: [] },
            sbc2: { ipv6: ["isp2"], misrouted: [] },
            srv1: { ipv6: ["isp2"], misrouted: [] },
            srv2: { ipv6: ["isp2"], misrouted: [] },
          })(s),
        "failover, and IPv6 heard through isp2 only",
        40_000,
      );
      expect(s.uplinks.map((u) => [u.id, u.state, u.ipv6])).toEqual([
        ["isp1", "down", "silent"],
        ["isp2", "up", "heard"],
      ]);
      // isp1's IPv6 channels still leave through isp1 (and go unanswered), not through the new default.
      for (const id of SERVERS) expect(await leaves(id, EDGE_ADDRESS6, channels(id).isp1!)).toBe("lan1");
    } finally {
      await site.lab.restore(1);
    }
    await site.until(
      (s) => s.activeUplink === "isp1" && settled(s, SERVERS) && sameView(everywhere)(s),
      "failback, and IPv6 through both uplinks again",
      40_000,
    );
    // The whole uplink went silent: its own event said so, not an IPv6 one.
    expect((await site.events()).filter((e) => e.kind === "ipv6-silent")).toEqual([]);
  });

  it("a server with IPv6 on one uplink only: its isp2 channel and rule go, isp1's stay, IPv4 goes on; both come back", async () => {
    const srv1 = site.server("srv1").ns;
    await srv1.exec(["sysctl", "-qw", "net.ipv6.conf.lan2.disable_ipv6=1"]);
    try {
      const s = await site.until(
        sameView({ ...everywhere, srv1: { ipv6: ["isp1"], misrouted: [] } }),
        "srv1 heard over IPv6 through isp1 only",
        30_000,
      );
      expect(agent(s, "srv1").uplinksSeen).toEqual(["isp1", "isp2"]);
      expect(Object.keys(channels("srv1"))).toEqual(["isp1"]);
      const rules = JSON.parse(await srv1.ip("-j", "-6", "rule", "show")) as { priority: number }[];
      expect(rules.map((r) => r.priority).filter((p) => p > 1100 && p < 1200)).toEqual([1101]);
      expect(Object.keys(await statusRows("srv1"))).toEqual(["isp1", "isp1 (IPv6)", "isp2"]);
    } finally {
      await srv1.exec(["sysctl", "-qw", "net.ipv6.conf.lan2.disable_ipv6=0"]);
    }
    await waitUntil(async () => (await ipv6Ready(srv1)).length === 2, "srv1's IPv6 on lan2 again", 30_000);
    await site.until(sameView(everywhere), "srv1 heard over IPv6 through both uplinks again", 30_000);
    expect(Object.keys(channels("srv1")).sort()).toEqual(["isp1", "isp2"]);
  });
});
