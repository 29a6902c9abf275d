// `wanwatch agent unroute`: removes a server agent's per-uplink policy routing. The agent removes
// it itself when it stops; the unit runs this after every stop too (ExecStopPost), because a
// SIGKILL, a crash or a stop during start-up leaves the rules behind.
import { DEFAULT_CONFIG_PATH, loadConfig } from "../config/load.ts";
import type { AgentConfig } from "../config/schema.ts";
import { existsSync } from "node:fs";
import { tableFor } from "../host/policy-rules.ts";
import { removeUplinkRouting } from "../host/policy-routing.ts";
import { unrouteIpv6 } from "../host/policy-routing6.ts";
import { parseCommand, type CommandSpec } from "./command.ts";

export const UNROUTE: CommandSpec = {
  name: "agent unroute",
  summary: "remove a server agent's per-uplink policy routing (the unit runs it after the agent stops)",
  flags: { config: { type: "string", value: "FILE", help: `the agent's config (default ${DEFAULT_CONFIG_PATH})` } },
  examples: ["wanwatch agent unroute --config /etc/wanwatch/agent.yaml"],
};

/**
 * The rules and tables of each uplink, by its place in the config, whatever their source address
 * now; the IPv6 ones too where the kernel has IPv6.
 */
export async function removeRouting(config: AgentConfig): Promise<void> {
  await removeUplinkRouting(new Map(config.uplinks.map((u, i) => [u.id, { sourceAddress: "", table: tableFor(i) }])));
  if (existsSync("/proc/net/if_inet6")) await unrouteIpv6(config.uplinks);
}

export async function unroute(args: string[], out: (s: string) => void): Promise<number> {
  const { values } = parseCommand(UNROUTE, args);
  const config = loadConfig((values.config as string | undefined) ?? DEFAULT_CONFIG_PATH, { host: false });
  if (config.role !== "server") {
    out("a probe installs no policy routing: nothing to remove");
    return 0;
  }
  await removeRouting(config);
  out(`removed the per-uplink policy routing of ${config.uplinks.map((u) => u.id).join(", ")}`);
  return 0;
}
