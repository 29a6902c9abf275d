// `agent install --enroll` on a server under a real NetworkManager: the connection of each uplink's
// interface is read with nmcli, and profiles named unlike their interfaces come out by their names.
// The server's namespace holds two LANs (veths) under NM keyfile profiles; the other end of both is
// a namespace that plays the routers and runs the real edge, which checks the token (--dry-run).
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parse } from "yaml";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AgentConfig } from "../../agent/src/config/schema.ts";
import { ROOT, buildBundle, wanwatch } from "../../lab/agent-process.ts";
import { labUnavailable, NetnsSet, type Netns } from "../../lab/netns.ts";
import {
  addLanProfile,
  networkManagerUnavailable,
  startNetworkManager,
  type NetworkManagerInNs,
} from "../../lab/network-manager.ts";
import { startLocalEdge, type LocalEdge } from "../../tools/local-edge.ts";

const why = labUnavailable() ?? networkManagerUnavailable();
const SITE = "nmsite";
// Profile names unlike their interfaces, with a space and a colon (which nmcli's terse output escapes).
const PROFILES = { lan1: "Fiber uplink", lan2: "LTE: backup" } as const;
const gateway = (n: 1 | 2) => `10.0.${n}.1`;

const dir = join(ROOT, ".state", `nm-detect-${process.pid}`);
const sets = new NetnsSet("nd");
let routers: Netns;
let srv: Netns;
let nm: NetworkManagerInNs;
let edge: LocalEdge;

/** The bundle as the admin's workstation would run it, from inside the routers' namespace. */
const admin = (args: string[]) =>
  wanwatch([...args, "--edge", edge.url, "--site", SITE], {
    netns: routers.name,
    env: { WANWATCH_ADMIN_TOKEN: edge.adminToken },
  });

beforeAll(async () => {
  if (why) return;
  buildBundle();
  mkdirSync(dir, { recursive: true });
  sets.onDestroy(() => rmSync(dir, { recursive: true, force: true }));
  routers = await sets.add("rtr");
  srv = await sets.add("srv");
  for (const n of [1, 2] as const) {
    await routers.ip("link", "add", `up${n}`, "type", "veth", "peer", "name", `lan${n}`, "netns", srv.name);
    await routers.ip("addr", "add", `${gateway(n)}/24`, "dev", `up${n}`);
    await routers.ip("link", "set", `up${n}`, "up");
  }
  nm = await startNetworkManager(srv, join(dir, "nm"));
  sets.onDestroy(() => nm.stop());
  for (const n of [1, 2] as const) {
    await addLanProfile(nm, {
      ifname: `lan${n}`,
      name: PROFILES[`lan${n}`],
      routeMetric: 99 + n,
      addressing: { address: `10.0.${n}.2/24`, gateway: gateway(n) },
    });
  }
  // The port is picked here: a free port of this host says nothing about the namespace.
  edge = await startLocalEdge({ host: gateway(1), port: 8787, netns: routers.name, stateDir: join(dir, "edge") });
  sets.onDestroy(() => edge.stop());
  const site = join(dir, "site.yaml");
  writeFileSync(site, "uplinks:\n  - { id: isp1, priority: 1 }\n  - { id: isp2, priority: 2 }\n");
  const applied = await admin(["site", "apply", site]);
  expect(applied.code, applied.stderr).toBe(0);
}, 120_000);

afterAll(async () => {
  await sets.destroy();
}, 60_000);

describe.skipIf(why)(
  `agent install detects NetworkManager connections under a real NetworkManager${why ? ` — skipped: ${why}` : ""}`,
  () => {
    it("a server enrolled with --uplink isp1=lan1 --uplink isp2=lan2 --switch nmcli: the dry run names each uplink's profile and writes it into the config", async () => {
      const enrolled = await admin(["site", "enroll", "--id", "srv1", "--role", "server"]);
      expect(enrolled.code, enrolled.stderr).toBe(0);
      const token = /\bwwe1\.\S+/.exec(enrolled.stdout)?.[0];
      expect(token, enrolled.stdout).toBeDefined();
      const r = await wanwatch(
        [
          "agent",
          "install",
          "--enroll",
          token!,
          "--edge",
          edge.url,
          "--uplink",
          "isp1=lan1",
          "--uplink",
          "isp2=lan2",
          "--switch",
          "nmcli",
          "--config",
          join(dir, "agent.yaml"),
          "--dry-run",
        ],
        { netns: srv.name, env: nm.env, timeoutMs: 30_000 },
      );
      expect(r.code, `${r.stderr}\n${nm.log()}`).toBe(0);
      expect(r.stdout).toContain(
        `# isp1: interface lan1, router ${gateway(1)}, NetworkManager connection "Fiber uplink"`,
      );
      expect(r.stdout).toContain(
        `# isp2: interface lan2, router ${gateway(2)}, NetworkManager connection "LTE: backup"`,
      );
      const yaml = r.stdout.split(/^==> .* <==$/m)[1]!; // the config, between its header and the unit's
      expect(AgentConfig.parse(parse(yaml))).toMatchObject({
        role: "server",
        uplinks: [
          { id: "isp1", interface: "lan1", connection: "Fiber uplink" },
          { id: "isp2", interface: "lan2", connection: "LTE: backup" },
        ],
        switch: { backend: "nmcli" },
      });
    });
  },
);
