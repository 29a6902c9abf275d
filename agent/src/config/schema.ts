import { z } from "zod";
import { AgentId, AgentRole, SiteId, UplinkId } from "#shared";

const InterfaceName = z.string().regex(/^[A-Za-z0-9_.:@-]{1,15}$/, "must be a Linux interface name (1–15 characters)");
const IPv4 = z.ipv4();

export const UplinkConfig = z.strictObject({
  id: UplinkId,
  interface: InterfaceName,
  // NetworkManager connection profile for this uplink (nmcli backend).
  connection: z.string().min(1).max(128).optional(),
  // Otherwise read from the host's routes.
  gateway: IPv4.optional(),
});

export const SwitchConfig = z.strictObject({
  backend: z.enum(["nmcli", "iproute2", "none"]).default("none"),
});

const TunnelBase = {
  timeoutMs: z.int().min(1_000).max(600_000).default(120_000),
  // cloudflared's metrics endpoint, e.g. http://127.0.0.1:2000/ready: wait for it before acknowledging.
  readyUrl: z.url({ protocol: /^https?$/ }).optional(),
};

/**
 * How this server restarts the tunnel (`backend`). Named apart from the site's `tunnels.restart`
 * (cluster / per-server / none: which servers restart); `restart: swarm` etc. is still read.
 */
export const DEPRECATED_TUNNEL_RESTART =
  "tunnels.restart is now tunnels.backend (the site's tunnels.restart says which servers restart; this says how): rename it";

const renameRestart = (v: unknown) => {
  if (v === null || typeof v !== "object" || !("restart" in v) || "backend" in v) return v;
  const { restart, ...rest } = v as Record<string, unknown>;
  return { backend: restart, ...rest };
};

/** The ways to restart a tunnel: a Swarm service, a Kubernetes deployment, a systemd unit, a command. */
const RESTART_BACKENDS = [
  z.strictObject({ backend: z.literal("swarm"), service: z.string().min(1).max(128), ...TunnelBase }),
  z.strictObject({
    backend: z.literal("kubernetes"),
    service: z.string().min(1).max(253),
    namespace: z.string().min(1).max(63).default("default"),
    ...TunnelBase,
  }),
  z.strictObject({ backend: z.literal("systemd"), service: z.string().min(1).max(256), ...TunnelBase }),
  z.strictObject({
    backend: z.literal("command"),
    command: z.array(z.string().min(1)).min(1).max(64),
    ...TunnelBase,
  }),
] as const;

const TunnelRestart = z.preprocess(renameRestart, z.discriminatedUnion("backend", RESTART_BACKENDS));

/**
 * `pinned`: one tunnel replica per uplink, each bound to that uplink's source address (cloudflared
 * `--edge-bind-address`), so the replica on a live uplink stays connected through a switch. Each
 * replica is restarted only when its own uplink comes back.
 */
const PinnedReplicas = z.strictObject({
  backend: z.literal("pinned"),
  replicas: z.record(UplinkId, TunnelRestart),
});

export const TunnelConfig = z.preprocess(
  renameRestart,
  z.discriminatedUnion("backend", [
    z.strictObject({ backend: z.literal("none") }),
    PinnedReplicas,
    ...RESTART_BACKENDS,
  ]),
);

export const AgentConfig = z
  .strictObject({
    // Heartbeats leave from each uplink's IPv4 address, so the edge needs one: a name (its AAAA
    // record, if any, carries the IPv6 heartbeats) or an IPv4 address.
    edge: z.url({ protocol: /^https?$/ }).refine((u) => !new URL(u).hostname.startsWith("["), {
      message: "an IPv6 address cannot be reached from the uplinks' IPv4 addresses: give the edge's name",
    }),
    site: SiteId,
    agent: AgentId,
    secretFile: z.string().min(1).default("/etc/wanwatch/secret"),
    role: AgentRole,
    uplinks: z.array(UplinkConfig).min(1).max(8),
    switch: SwitchConfig.default({ backend: "none" }),
    tunnels: TunnelConfig.default({ backend: "none" }),
    stateDir: z.string().min(1).default("/var/lib/wanwatch"),
    // Heartbeat interval per uplink until the edge's first answer, which carries the site's policy.heartbeatMs.
    heartbeatMs: z.int().min(250).max(60_000).default(1_000),
  })
  .superRefine((c, ctx) => {
    if (c.role === "probe" && c.uplinks.length !== 1)
      ctx.addIssue({ code: "custom", path: ["uplinks"], message: "a probe sits behind exactly one uplink" });
    if (c.role === "server" && c.uplinks.length < 2)
      ctx.addIssue({ code: "custom", path: ["uplinks"], message: "a server agent needs every uplink (at least two)" });
    const ids = new Set<string>();
    c.uplinks.forEach((u, i) => {
      if (ids.has(u.id))
        ctx.addIssue({ code: "custom", path: ["uplinks", i, "id"], message: `duplicate uplink id "${u.id}"` });
      ids.add(u.id);
    });
    if (c.switch.backend === "nmcli")
      c.uplinks.forEach((u, i) => {
        if (!u.connection)
          ctx.addIssue({
            code: "custom",
            path: ["uplinks", i, "connection"],
            message: "the nmcli backend needs the uplink's NetworkManager connection name",
          });
      });
    if (c.tunnels.backend === "pinned") {
      const replicas = Object.keys(c.tunnels.replicas);
      for (const id of replicas.filter((r) => !ids.has(r)))
        ctx.addIssue({
          code: "custom",
          path: ["tunnels", "replicas", id],
          message: `"${id}" is none of this agent's uplinks (${[...ids].join(", ")})`,
        });
      c.uplinks.forEach((u) => {
        if (!replicas.includes(u.id))
          ctx.addIssue({
            code: "custom",
            path: ["tunnels", "replicas", u.id],
            message: "pinned tunnels need a replica on every uplink (each bound to that uplink's source address)",
          });
      });
    }
  });

export type UplinkConfig = z.infer<typeof UplinkConfig>;
export type TunnelConfig = z.infer<typeof TunnelConfig>;
export type TunnelRestart = z.infer<typeof TunnelRestart>;
export type AgentConfig = z.infer<typeof AgentConfig>;
