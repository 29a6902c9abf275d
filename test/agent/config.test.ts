import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ConfigError, hostProblems, loadConfig, parseConfig, type HostFacts } from "../../agent/src/config/load.ts";
import { tempDir } from "./support.ts";

const valid = {
  edge: "https://wanwatch.example.workers.dev",
  site: "office",
  agent: "srv1",
  secretFile: "/etc/wanwatch/secret",
  role: "server",
  uplinks: [
    { id: "isp1", interface: "eth0", connection: "Wired connection 1" },
    { id: "isp2", interface: "eth1", connection: "Wired connection 2" },
  ],
  switch: { backend: "nmcli" },
  tunnels: { restart: "swarm", service: "cloudflared_tunnel", readyUrl: "http://127.0.0.1:2000/ready" },
};

function lines(fn: () => unknown): string[] {
  try {
    fn();
  } catch (err) {
    if (err instanceof ConfigError) return err.lines;
    throw err;
  }
  throw new Error("expected a ConfigError");
}

describe("agent config", () => {
  it("reads the contract's YAML example, with defaults filled in", () => {
    const dir = tempDir();
    const file = join(dir, "agent.yaml");
    writeFileSync(
      file,
      `edge: https://wanwatch.example.workers.dev
site: office
agent: srv1
secretFile: /etc/wanwatch/secret
role: server
uplinks:
  - { id: isp1, interface: eth0, connection: "Wired connection 1" }
  - { id: isp2, interface: eth1, connection: "Wired connection 2" }
switch: { backend: nmcli }
tunnels: { restart: swarm, service: cloudflared_tunnel, readyUrl: "http://127.0.0.1:2000/ready" }
`,
    );
    const c = loadConfig(file, { host: false });
    expect(c).toMatchObject({
      ...valid,
      stateDir: "/var/lib/wanwatch",
      heartbeatMs: 1_000,
      tunnels: { timeoutMs: 120_000 },
    });
  });

  it("accepts JSON too", () => {
    const file = join(tempDir(), "agent.json");
    writeFileSync(file, JSON.stringify(valid));
    expect(loadConfig(file, { host: false }).agent).toBe("srv1");
  });

  it("one line per problem, each naming the field as written in the file", () => {
    const got = lines(() =>
      parseConfig("x", {
        ...valid,
        site: "My Office",
        uplinks: [
          { id: "isp1", interface: "eth0", connection: "a" },
          { id: "isp2", interface: "a-very-long-interface-name", connection: "b" },
        ],
      }),
    );
    expect(got).toEqual([
      "site: must match [a-z0-9][a-z0-9-]{0,62}",
      "uplinks[1].interface: must be a Linux interface name (1–15 characters)",
    ]);
    expect(
      lines(() =>
        parseConfig("x", {
          ...valid,
          uplinks: [
            { id: "isp1", interface: "eth0" },
            { id: "isp1", interface: "eth1" },
          ],
        }),
      ),
    ).toEqual([
      'uplinks[1].id: duplicate uplink id "isp1"',
      "uplinks[0].connection: the nmcli backend needs the uplink's NetworkManager connection name",
      "uplinks[1].connection: the nmcli backend needs the uplink's NetworkManager connection name",
    ]);
    expect(lines(() => parseConfig("x", { ...valid, tunnels: { restart: "swarm" } }))).toEqual([
      expect.stringMatching(/^tunnels\.service: /),
    ]);
  });

  it("pinned tunnel replicas: one per uplink, each with its own restart, refused by field otherwise", () => {
    const pinned = (replicas: object) => ({ ...valid, tunnels: { backend: "pinned", replicas } });
    const unit = (service: string) => ({ backend: "systemd", service });
    expect(
      parseConfig("x", pinned({ isp1: unit("cloudflared-isp1"), isp2: { restart: "command", command: ["/x"] } }))
        .tunnels,
    ).toEqual({
      backend: "pinned",
      replicas: {
        isp1: { backend: "systemd", service: "cloudflared-isp1", timeoutMs: 120_000 },
        isp2: { backend: "command", command: ["/x"], timeoutMs: 120_000 },
      },
    });
    expect(lines(() => parseConfig("x", pinned({ isp1: unit("a"), isp3: unit("c") })))).toEqual([
      'tunnels.replicas.isp3: "isp3" is none of this agent\'s uplinks (isp1, isp2)',
      "tunnels.replicas.isp2: pinned tunnels need a replica on every uplink (each bound to that uplink's source address)",
    ]);
    expect(lines(() => parseConfig("x", pinned({ isp1: unit("a"), isp2: { backend: "systemd" } })))).toEqual([
      expect.stringMatching(/^tunnels\.replicas\.isp2\.service: /),
    ]);
    expect(lines(() => parseConfig("x", pinned({ isp1: unit("a"), isp2: { backend: "pinned" } })))).toEqual([
      expect.stringMatching(/^tunnels\.replicas\.isp2\.backend: /),
    ]);
  });

  it("host checks: missing interfaces and an unreadable secret, each on its own line", () => {
    const host: HostFacts = {
      interfaceExists: (n) => n === "eth0",
      unreadable: (p) => (p === "/etc/wanwatch/secret" ? "does not exist" : null),
    };
    expect(hostProblems(parseConfig("x", valid), host)).toEqual([
      'uplinks[1].interface: interface "eth1" does not exist',
      "secretFile: /etc/wanwatch/secret does not exist",
    ]);
  });

  it("host checks against this machine: lo exists, eth9 does not", () => {
    const dir = tempDir();
    const secret = join(dir, "secret");
    writeFileSync(secret, "x".repeat(32), { mode: 0o600 });
    const file = join(dir, "agent.yaml");
    writeFileSync(
      file,
      JSON.stringify({
        ...valid,
        secretFile: secret,
        switch: { backend: "none" },
        uplinks: [
          { id: "isp1", interface: "lo" },
          { id: "isp2", interface: "eth9" },
        ],
      }),
    );
    expect(lines(() => loadConfig(file))).toEqual(['uplinks[1].interface: interface "eth9" does not exist']);
  });

  it("an edge given by its IPv6 address is refused by name: heartbeats leave from IPv4 addresses", () => {
    expect(lines(() => parseConfig("x", { ...valid, edge: "http://[2001:db8:ff::10]:8787" }))).toEqual([
      expect.stringMatching(/^edge: an IPv6 address cannot be reached/),
    ]);
  });

  it("an unknown setting is refused by name (there is no local failover: the edge decides)", () => {
    expect(lines(() => parseConfig("x", { ...valid, localFailover: true }))).toEqual([
      expect.stringContaining("localFailover"),
    ]);
  });
});
