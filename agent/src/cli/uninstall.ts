// `wanwatch agent uninstall`: stops and removes the service, its policy routing, its files and the bundle.
import { existsSync, rmSync } from "node:fs";
import { resolve } from "node:path";
import { ConfigError, DEFAULT_CONFIG_PATH, loadConfig } from "../config/load.ts";
import type { AgentConfig } from "../config/schema.ts";
import { removeUplinkRouting, tableFor } from "../host/policy-routing.ts";
import { bundlePaths, systemctl, systemdRuns } from "../install/host-setup.ts";
import { SERVICE } from "../install/unit.ts";
import { describeError } from "../lib/errors.ts";
import { parseCommand, type CommandSpec } from "./command.ts";

export const UNINSTALL: CommandSpec = {
  name: "agent uninstall",
  summary: "stop and remove the agent: unit, policy-routing rules, config, secret, state and the bundle",
  flags: {
    config: { type: "string", value: "FILE", help: `the agent's config, which names its secret and state (default ${DEFAULT_CONFIG_PATH})` },
    unit: { type: "string", value: "FILE", help: `the unit to remove (default /etc/systemd/system/${SERVICE})` },
    prefix: { type: "string", value: "DIR", help: "where `agent install` put the bundle (default /usr/local)" },
  },
  examples: ["wanwatch agent uninstall", "wanwatch agent uninstall --config /etc/wanwatch/agent.yaml"],
};

/** A server's rules and tables, whether or not the agent got to remove them (a SIGKILL does not). */
async function removeRouting(config: AgentConfig): Promise<void> {
  await removeUplinkRouting(new Map(config.uplinks.map((u, i) => [u.id, { sourceAddress: "", table: tableFor(i) }])));
}

export async function uninstall(args: string[], out: (s: string) => void): Promise<number> {
  const { values } = parseCommand(UNINSTALL, args);
  const configPath = resolve((values.config as string | undefined) ?? DEFAULT_CONFIG_PATH);
  const unitPath = resolve((values.unit as string | undefined) ?? `/etc/systemd/system/${SERVICE}`);
  const did: string[] = [];
  let config: AgentConfig | null = null;
  try {
    config = loadConfig(configPath, { host: false });
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    did.push(`config ${configPath} unreadable (${err.lines[0]}): removing only the unit and the bundle`);
  }
  if (systemdRuns() && existsSync(unitPath)) {
    await systemctl("disable", "--now", SERVICE);
    did.push(`stopped and disabled ${SERVICE}`);
  }
  if (config?.role === "server") {
    try {
      await removeRouting(config);
      did.push("removed the per-uplink policy routing");
    } catch (err) {
      did.push(`could not remove the per-uplink policy routing: ${describeError(err)}`);
    }
  }
  const { bundle, bin } = bundlePaths(resolve((values.prefix as string | undefined) ?? "/usr/local"));
  for (const p of [unitPath, ...(config ? [config.secretFile, config.stateDir] : []), configPath, bin, bundle])
    if (existsSync(p)) {
      rmSync(p, { recursive: true, force: true });
      did.push(`removed ${p}`);
    }
  if (systemdRuns()) await systemctl("daemon-reload");
  out(did.length ? did.join("\n") : "nothing to remove");
  return 0;
}
