// `agent install`'s flags, one per agent config field, and the config document they make.
import type { CommandSpec, Flag } from "../cli/command.ts";
import { parseDuration } from "../cli/duration.ts";
import { UsageError } from "../lib/errors.ts";

/** Each config field (its path in the YAML, [] standing for every list item) and the flag that sets it. */
export const FIELD_FLAGS: Record<string, string> = {
  edge: "edge",
  site: "site",
  agent: "agent",
  role: "role",
  secretFile: "secret-file",
  stateDir: "state-dir",
  heartbeatMs: "heartbeat",
  "uplinks[].id": "uplink",
  "uplinks[].interface": "uplink",
  "uplinks[].connection": "connection",
  "uplinks[].gateway": "gateway",
  "switch.backend": "switch",
  "tunnels.backend": "tunnel",
  "tunnels.service": "tunnel-service",
  "tunnels.namespace": "tunnel-namespace",
  "tunnels.command": "tunnel-command",
  "tunnels.timeoutMs": "tunnel-timeout",
  "tunnels.readyUrl": "ready-url",
  "tunnels.replicas": "tunnel-replica",
};

export const CONFIG_FLAGS = {
  edge: { type: "string", value: "URL", help: "your edge's https:// URL, e.g. https://wanwatch.example.workers.dev" },
  site: { type: "string", value: "SITE", help: "the site this agent belongs to" },
  agent: { type: "string", value: "ID", help: "this agent's id, as enrolled with `wanwatch site enroll --id`" },
  role: {
    type: "string",
    value: "probe|server",
    help: "probe: an SBC behind one uplink; server: switches routes and tunnels, sends through every uplink",
  },
  uplink: {
    type: "string",
    multiple: true,
    value: "ID[=IFACE]",
    help: "an uplink of the site and this host's interface to it (a probe's defaults to the default route's); a server names every uplink",
  },
  connection: {
    type: "string",
    multiple: true,
    value: "ID=NAME",
    help: "the uplink's NetworkManager connection (nmcli con show), needed by --switch nmcli",
  },
  gateway: {
    type: "string",
    multiple: true,
    value: "ID=IPV4",
    help: "the uplink's router, when the host's routes do not tell it",
  },
  switch: {
    type: "string",
    value: "nmcli|iproute2|none",
    help: "how a server moves its default route (default none: report only)",
  },
  tunnel: {
    type: "string",
    value: "swarm|kubernetes|systemd|command|pinned|none",
    help: "how this server restarts the tunnel after a switch (default none); pinned: one replica per uplink, see --tunnel-replica",
  },
  "tunnel-replica": {
    type: "string",
    multiple: true,
    value: "ID=BACKEND:TARGET",
    help: "--tunnel pinned: the uplink's replica and how to restart it, e.g. isp1=systemd:cloudflared-isp1 (swarm:SERVICE, kubernetes:DEPLOYMENT, command:'CMD ARG…'); one per uplink",
  },
  "replica-ready-url": {
    type: "string",
    multiple: true,
    value: "ID=URL",
    help: "--tunnel pinned: the uplink's replica's readiness URL (its cloudflared --metrics address + /ready)",
  },
  "tunnel-service": {
    type: "string",
    value: "NAME",
    help: "the tunnel's swarm service, kubernetes deployment or systemd unit",
  },
  "tunnel-namespace": { type: "string", value: "NS", help: "the kubernetes namespace (default: default)" },
  "tunnel-command": {
    type: "string",
    value: "'CMD ARG…'",
    help: "--tunnel command: the program and its arguments, split at spaces (no shell)",
  },
  "tunnel-timeout": { type: "string", value: "DURATION", help: "how long a restart may take, e.g. 2m (default 120s)" },
  "ready-url": {
    type: "string",
    value: "URL",
    help: "the tunnel's readiness URL (cloudflared: http://127.0.0.1:2000/ready), waited for after a restart",
  },
  heartbeat: {
    type: "string",
    value: "DURATION",
    help: "heartbeat interval until the edge sends the site's, e.g. 1s (default 1s)",
  },
  "secret-file": {
    type: "string",
    value: "FILE",
    help: "where the agent's secret is kept, mode 0600 (default /etc/wanwatch/secret)",
  },
  "state-dir": { type: "string", value: "DIR", help: "the agent's state folder (default /var/lib/wanwatch)" },
} as const satisfies Record<string, Flag>;

type Values = Partial<Record<keyof typeof CONFIG_FLAGS, string | string[] | undefined>>;

const str = (v: string | string[] | undefined) => (typeof v === "string" ? v : undefined);
const list = (v: string | string[] | undefined) => (Array.isArray(v) ? v : typeof v === "string" ? [v] : []);

/** ID=VALUE pairs of a repeatable flag, keyed by uplink id; each id must be one of the uplinks. */
function pairs(flag: string, values: string[], ids: string[], spec: CommandSpec): Map<string, string> {
  const out = new Map<string, string>();
  for (const v of values) {
    const eq = v.indexOf("=");
    if (eq < 1 || eq === v.length - 1)
      throw new UsageError(
        `--${flag} ${v}: write it as UPLINK=VALUE, e.g. --${flag} ${ids[0] ?? "isp1"}=…; see \`wanwatch ${spec.name} --help\``,
      );
    const id = v.slice(0, eq);
    if (!ids.includes(id))
      throw new UsageError(`--${flag} ${v}: "${id}" is none of this agent's uplinks (${ids.join(", ")})`);
    out.set(id, v.slice(eq + 1));
  }
  return out;
}

const words = (cmd: string) => cmd.split(/\s+/).filter(Boolean);

/** `--tunnel-replica ID=BACKEND:TARGET` (and `--replica-ready-url ID=URL`): each uplink's replica. */
function replicasFromFlags(v: Values, ids: string[], spec: CommandSpec, common: object): Record<string, object> {
  const ready = pairs("replica-ready-url", list(v["replica-ready-url"]), ids, spec);
  const out: Record<string, object> = {};
  for (const [id, value] of pairs("tunnel-replica", list(v["tunnel-replica"]), ids, spec)) {
    const colon = value.indexOf(":");
    if (colon < 1 || colon === value.length - 1)
      throw new UsageError(
        `--tunnel-replica ${id}=${value}: write it as UPLINK=BACKEND:TARGET, e.g. --tunnel-replica ${id}=systemd:cloudflared-${id}`,
      );
    const [backend, target] = [value.slice(0, colon), value.slice(colon + 1)];
    out[id] = {
      backend,
      ...(backend === "command" ? { command: words(target) } : { service: target }),
      ...common,
      ...(ready.has(id) ? { readyUrl: ready.get(id) } : {}),
    };
  }
  return out;
}

function duration(flag: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const ms = parseDuration(v, "ms");
  if (ms === null) throw new UsageError(`--${flag} ${v}: not a duration; write e.g. 1s, 500ms, 2m`);
  return ms;
}

/**
 * The config document, not yet validated (the schema does that, naming fields). `defaultInterface`
 * gives a probe's interface when --uplink names none.
 */
export function configFromFlags(
  v: Values,
  spec: CommandSpec,
  defaultInterface: () => string | null,
  resolvePath: (p: string) => string,
): Record<string, unknown> {
  const role = str(v.role);
  if (role !== undefined && role !== "probe" && role !== "server")
    throw new UsageError(`--role must be probe or server: ${`see \`wanwatch ${spec.name} --help\``}`);
  const uplinkArgs = list(v.uplink);
  if (role === "probe" && uplinkArgs.length !== 1)
    throw new UsageError(`a probe sits behind exactly one uplink: give --uplink ID[=IFACE] once`);
  if (role === "server" && uplinkArgs.length < 2)
    throw new UsageError(
      `a server agent uses every uplink: give --uplink ID=IFACE for each (at least two), e.g. --uplink isp1=eth0 --uplink isp2=eth1`,
    );
  const ids = uplinkArgs.map((a) => a.split("=", 1)[0]!);
  const connections = pairs("connection", list(v.connection), ids, spec);
  const gateways = pairs("gateway", list(v.gateway), ids, spec);
  const uplinks = uplinkArgs.map((a) => {
    const [id, iface] = [a.split("=", 1)[0]!, a.includes("=") ? a.slice(a.indexOf("=") + 1) : ""];
    const name = iface || (role === "probe" ? defaultInterface() : null);
    if (!name)
      throw new UsageError(
        `--uplink ${a}: name its interface (--uplink ${id}=eth0)${role === "probe" ? "; this host has no default route to take it from" : ""}`,
      );
    return {
      id,
      interface: name,
      ...(connections.has(id) ? { connection: connections.get(id) } : {}),
      ...(gateways.has(id) ? { gateway: gateways.get(id) } : {}),
    };
  });
  const backend = str(v.tunnel);
  const tunnelFlags = (
    ["tunnel-service", "tunnel-namespace", "tunnel-command", "tunnel-timeout", "ready-url"] as const
  ).filter((f) => v[f] !== undefined);
  if (!backend && tunnelFlags.length)
    throw new UsageError(`--${tunnelFlags[0]} goes with --tunnel swarm|kubernetes|systemd|command`);
  const replicaFlags = (["tunnel-replica", "replica-ready-url"] as const).filter((f) => v[f] !== undefined);
  if (backend !== "pinned" && replicaFlags.length)
    throw new UsageError(`--${replicaFlags[0]} goes with --tunnel pinned`);
  if (role === "probe" && (backend || v.switch))
    throw new UsageError(`--${backend ? "tunnel" : "switch"} is for server agents: a probe moves nothing`);
  const common = {
    ...(v["tunnel-namespace"] ? { namespace: str(v["tunnel-namespace"]) } : {}),
    ...(v["tunnel-timeout"] ? { timeoutMs: duration("tunnel-timeout", str(v["tunnel-timeout"])) } : {}),
  };
  const tunnels =
    backend === "pinned"
      ? { backend, replicas: replicasFromFlags(v, ids, spec, common) }
      : backend
        ? {
            backend,
            ...(v["tunnel-service"] ? { service: str(v["tunnel-service"]) } : {}),
            ...(v["tunnel-command"] ? { command: words(str(v["tunnel-command"])!) } : {}),
            ...common,
            ...(v["ready-url"] ? { readyUrl: str(v["ready-url"]) } : {}),
          }
        : undefined;
  const heartbeatMs = duration("heartbeat", str(v.heartbeat));
  return {
    edge: str(v.edge),
    site: str(v.site),
    agent: str(v.agent),
    secretFile: resolvePath(str(v["secret-file"]) ?? "/etc/wanwatch/secret"),
    role,
    uplinks,
    ...(role === "server"
      ? { switch: { backend: str(v.switch) ?? "none" }, tunnels: tunnels ?? { backend: "none" } }
      : {}),
    ...(v["state-dir"] ? { stateDir: resolvePath(str(v["state-dir"])!) } : {}),
    ...(heartbeatMs !== undefined ? { heartbeatMs } : {}),
  };
}
