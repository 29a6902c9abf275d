// `wanwatch agent uninstall`: stops and removes the service, its policy routing, its files and the bundle.
import { existsSync, readFileSync, rmSync } from "node:fs";
import { resolve } from "node:path";
import { parse as parseYaml } from "yaml";
import { ConfigError, DEFAULT_CONFIG_PATH, loadConfig } from "../config/load.ts";
import type { AgentConfig } from "../config/schema.ts";
import { bundlePaths, systemctl, systemdRuns } from "../install/host-setup.ts";
import { SERVICE } from "../install/unit.ts";
import { describeError } from "../lib/errors.ts";
import { parseCommand, type CommandSpec } from "./command.ts";
import { removeRouting } from "./unroute.ts";

export const UNINSTALL: CommandSpec = {
  name: "agent uninstall",
  summary: "stop and remove the agent: unit, policy-routing rules, config, secret, state and the bundle",
  flags: {
    config: {
      type: "string",
      value: "FILE",
      help: `the agent's config, which names its secret and state (default ${DEFAULT_CONFIG_PATH})`,
    },
    unit: { type: "string", value: "FILE", help: `the unit to remove (default /etc/systemd/system/${SERVICE})` },
    prefix: { type: "string", value: "DIR", help: "where `agent install` put the bundle (default /usr/local)" },
  },
  examples: ["wanwatch agent uninstall", "wanwatch agent uninstall --config /etc/wanwatch/agent.yaml"],
};

/** A config that does not validate still names its secret and state: the defaults where it does not. */
function filesOfBrokenConfig(path: string): string[] {
  const doc = ((): { secretFile?: unknown; stateDir?: unknown } | null => {
    try {
      return parseYaml(readFileSync(path, "utf8"));
    } catch {
      return null; // unreadable or not YAML: the defaults
    }
  })();
  const str = (v: unknown, fallback: string) => (typeof v === "string" && v.startsWith("/") ? v : fallback);
  return [str(doc?.secretFile, "/etc/wanwatch/secret"), str(doc?.stateDir, "/var/lib/wanwatch")];
}

export async function uninstall(args: string[], out: (s: string) => void): Promise<number> {
  const { values } = parseCommand(UNINSTALL, args);
  const configPath = resolve((values.config as string | undefined) ?? DEFAULT_CONFIG_PATH);
  const unitPath = resolve((values.unit as string | undefined) ?? `/etc/systemd/system/${SERVICE}`);
  const did: string[] = [];
  let config: AgentConfig | null = null;
  let files: string[] = [];
  try {
    config = loadConfig(configPath, { host: false });
    files = [config.secretFile, config.stateDir];
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    files = filesOfBrokenConfig(configPath);
    did.push(`config ${configPath} is not valid (${err.lines[0]}): removing the files it names, but no routing`);
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
  for (const p of [unitPath, ...files, configPath, bin, bundle])
    if (existsSync(p)) {
      rmSync(p, { recursive: true, force: true });
      did.push(`removed ${p}`);
    }
  if (systemdRuns()) await systemctl("daemon-reload");
  out(did.length ? did.join("\n") : "nothing to remove");
  return 0;
}
