// `wanwatch agent status`: this host's view, from the files the daemon keeps in stateDir.
import { DEFAULT_CONFIG_PATH, loadConfig } from "../config/load.ts";
import { UserError } from "../lib/errors.ts";
import { readState, readStatus, type ReplicaView } from "../state/files.ts";
import { parseCommand, type CommandSpec } from "./command.ts";
import { ago, ms, table } from "./tables.ts";

export const AGENT_STATUS: CommandSpec = {
  name: "agent status",
  summary: "this host's agent: daemon, directive, each uplink's channel, the last error",
  flags: {
    config: { type: "string", value: "FILE", help: `the agent's config (default ${DEFAULT_CONFIG_PATH})` },
    json: { type: "boolean", help: "the state and status files as JSON" },
  },
  examples: ["wanwatch agent status", "wanwatch agent status --config /etc/wanwatch/agent.yaml --json"],
};

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

export function agentStatus(args: string[], out: (s: string) => void, now = Date.now()): number {
  const { values } = parseCommand(AGENT_STATUS, args);
  const config = loadConfig((values.config as string | undefined) ?? DEFAULT_CONFIG_PATH, { host: false });
  const status = readStatus(config.stateDir);
  const state = readState(config.stateDir);
  if (!status.ok && !state.ok) {
    if (status.missing && state.missing)
      throw new UserError(`no agent state in ${config.stateDir}: has \`wanwatch agent run\` started on this host?`);
    throw new UserError(status.ok ? (state as { error: string }).error : status.error);
  }
  if (values.json) {
    out(JSON.stringify({ state: state.ok ? state.value : null, status: status.ok ? status.value : null }, null, 2));
    return 0;
  }
  const s = status.ok ? status.value : null;
  const d = s?.directive ?? (state.ok ? state.value.directive : null);
  const applied = s?.appliedGeneration ?? (state.ok ? state.value.appliedGeneration : null);
  const tunnels = s?.tunnelGeneration ?? (state.ok ? state.value.tunnelGeneration : null);
  const lastError = s ? s.lastError : state.ok ? state.value.lastError : null;
  const running = s && s.stoppedAt === null && alive(s.pid);
  const lines = [
    `agent ${config.agent} (${config.role}) in site ${config.site}, edge ${config.edge}`,
    s
      ? running
        ? `daemon: running (pid ${s.pid}), status written ${ago(s.updatedAt, now)}`
        : `daemon: not running (last status ${ago(s.updatedAt, now)})`
      : "daemon: no status file",
    d
      ? `directive: generation ${d.generation}, active uplink ${d.activeUplink}${d.restartTunnels ? ", restart tunnels" : ""}`
      : "directive: none received yet",
  ];
  if (config.role === "server") {
    lines.push(
      `applied generation: ${applied ?? "none"}${d && applied !== null && applied >= d.generation ? " (up to date)" : d ? " (pending)" : ""}`,
    );
    lines.push(`tunnel generation: ${tunnels ?? "none"}`);
    if (s) lines.push(`host default route: via ${s.routedUplink ?? "unknown"}`);
  }
  // The edge refusing this agent outranks a local error: nothing else works until it is fixed.
  const refusal = s?.refusal;
  lines.push(
    `last error: ${refusal ? `the edge refuses this agent (${refusal.code}: ${refusal.message}, ${ago(refusal.at, now)}); fix: ${refusal.fix}` : (lastError ?? "none")}`,
  );
  if (s) {
    lines.push(`clock offset to edge: ${s.clockOffsetMs} ms`, "");
    lines.push(
      table(
        ["UPLINK", "CHANNEL", "LAST CONTACT", "RTT", "SOURCE", "PROBLEM"],
        Object.entries(s.uplinks).flatMap(([id, u]) => [
          [id, u.transport ?? "down", ago(u.lastContactAt, now), ms(u.rttMs), u.localAddress ?? "-", u.error ?? "-"],
          // Its IPv6 channel, a line of its own: heard or not, it never decides the uplink's fate.
          ...(u.ipv6
            ? [
                [
                  `${id} (IPv6)`,
                  u.ipv6.transport ?? "down",
                  ago(u.ipv6.lastContactAt, now),
                  ms(u.ipv6.rttMs),
                  u.ipv6.localAddress,
                  "-",
                ],
              ]
            : []),
        ]),
      ),
    );
    for (const [id, r] of Object.entries(s.replicas ?? {})) lines.push(replicaLine(id, r, now));
  }
  out(lines.join("\n"));
  return 0;
}

/** One pinned tunnel replica: restarted when its uplink last came back, or why not. */
function replicaLine(uplink: string, r: ReplicaView, now: number): string {
  const last = r.restarting
    ? "restarting now"
    : r.restartedAt === null
      ? "not restarted since the agent started"
      : `restarted ${ago(r.restartedAt, now)}`;
  const failed = r.lastError
    ? `; last restart failed: ${r.lastError}${r.retryAt === null ? "" : ` (retry on its next answer after ${new Date(r.retryAt).toISOString()})`}`
    : "";
  return `pinned tunnel replica ${uplink}: ${last}${failed}`;
}
