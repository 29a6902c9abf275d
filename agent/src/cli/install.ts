// `wanwatch agent install`: writes the agent config (0600) and a systemd unit, enables it where
// systemd runs. --dry-run prints both and touches nothing.
import { chmodSync, existsSync, mkdirSync, readFileSync, readlinkSync, writeFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { execa } from "execa";
import { stringify } from "yaml";
import { issueLines } from "../../../shared/src/index.ts";
import { DEFAULT_CONFIG_PATH } from "../config/load.ts";
import { AgentConfig } from "../config/schema.ts";
import { UsageError, UserError } from "../lib/errors.ts";
import { parse, required } from "./args.ts";

export const INSTALL_USAGE =
  "wanwatch agent install --edge URL --site S --agent ID --role probe|server [--uplink ID[=IFACE]]… [--switch nmcli|iproute2|none] [--secret-file F] [--config F] [--unit F] [--dry-run]";

const UNIT_PATH = "/etc/systemd/system/wanwatch.service";

/** The interface of the IPv4 default route with the lowest metric, from /proc/net/route. */
export function defaultRouteInterface(routeTable = "/proc/net/route"): string | null {
  try {
    const rows = readFileSync(routeTable, "utf8").trim().split("\n").slice(1).map((l) => l.trim().split(/\s+/));
    const defaults = rows.filter((r) => r[1] === "00000000" && r[7] === "00000000").sort((a, b) => Number(a[6]) - Number(b[6]));
    return defaults[0]?.[0] ?? null;
  } catch {
    return null;
  }
}

/** systemd as PID 1: the only case where `systemctl enable --now` can work. */
export function systemdRuns(): boolean {
  if (existsSync("/run/systemd/system")) return true;
  try {
    return readlinkSync("/proc/1/exe").includes("systemd");
  } catch {
    return false;
  }
}

export function unitFile(configPath: string, nodePath = process.execPath, script = resolve(process.argv[1] ?? "wanwatch.mjs")): string {
  return `[Unit]
Description=wanwatch agent: dual-uplink failover, directed by the edge
Wants=network-online.target
After=network-online.target NetworkManager.service

[Service]
Type=simple
ExecStart=${nodePath} ${script} agent run --config ${configPath}
Restart=always
RestartSec=2
# The agent handles SIGTERM: closes its channels and removes its policy routing.
KillSignal=SIGTERM
TimeoutStopSec=15

[Install]
WantedBy=multi-user.target
`;
}

export async function install(args: string[], env: NodeJS.ProcessEnv, out: (s: string) => void): Promise<number> {
  const { values } = parse(
    args,
    {
      edge: { type: "string" },
      site: { type: "string" },
      agent: { type: "string" },
      role: { type: "string" },
      uplink: { type: "string", multiple: true },
      switch: { type: "string" },
      "secret-file": { type: "string" },
      config: { type: "string" },
      unit: { type: "string" },
      "dry-run": { type: "boolean" },
    },
    { usage: INSTALL_USAGE },
  );
  const role = required(values.role, "--role", INSTALL_USAGE);
  if (role !== "probe" && role !== "server") throw new UsageError(`--role must be probe or server\nusage: ${INSTALL_USAGE}`);
  const uplinkArgs = values.uplink ?? [];
  if (role === "probe" && uplinkArgs.length !== 1) throw new UsageError(`a probe sits behind exactly one uplink: give --uplink ID[=IFACE] once\nusage: ${INSTALL_USAGE}`);
  if (role === "server" && uplinkArgs.length < 2) throw new UsageError(`a server agent uses every uplink: give --uplink ID=IFACE for each (at least two)\nusage: ${INSTALL_USAGE}`);
  const uplinks = uplinkArgs.map((a) => {
    const [id, iface] = a.split("=", 2) as [string, string | undefined];
    const name = iface || (role === "probe" ? defaultRouteInterface() : null);
    if (!name) throw new UsageError(`--uplink ${a}: name its interface (--uplink ${id}=eth0)${role === "probe" ? "; this host has no default route to take it from" : ""}`);
    return { id, interface: name };
  });
  const configPath = resolve(values.config ?? DEFAULT_CONFIG_PATH);
  const unitPath = resolve(values.unit ?? UNIT_PATH);
  const secretFile = resolve(values["secret-file"] ?? "/etc/wanwatch/secret");
  const doc = {
    edge: required(values.edge, "--edge", INSTALL_USAGE),
    site: required(values.site, "--site", INSTALL_USAGE),
    agent: required(values.agent, "--agent", INSTALL_USAGE),
    secretFile,
    role,
    uplinks,
    ...(role === "server" ? { switch: { backend: values.switch ?? "none" } } : {}),
  };
  const check = AgentConfig.safeParse(doc);
  if (!check.success) {
    const lines = issueLines(check.error);
    throw new UserError(lines[0]!, 2, { lines });
  }
  const yaml =
    `# wanwatch agent config, written by \`wanwatch agent install\`. Reference: the README's "Agent config".\n` +
    (role === "server" ? `# Server agents: set switch.backend (nmcli needs each uplink's connection name) and tunnels.\n` : "") +
    stringify(doc);
  const unit = unitFile(configPath);
  const systemd = systemdRuns();

  if (values["dry-run"]) {
    out(
      [
        `# dry run: nothing written`,
        `==> ${configPath} (mode 0600) <==`,
        yaml.trimEnd(),
        `==> ${unitPath} (mode 0644) <==`,
        unit.trimEnd(),
        `==> then <==`,
        systemd ? `# would run: systemctl daemon-reload && systemctl enable --now wanwatch` : `# systemd is not running on this host: would not enable the unit`,
        existsSync(secretFile) ? `# secret file ${secretFile} exists` : env.WANWATCH_SECRET ? `# would write the secret from WANWATCH_SECRET to ${secretFile} (mode 0600)` : `# secret file ${secretFile} does not exist yet: put the secret from \`wanwatch site enroll\` there (mode 0600)`,
      ].join("\n"),
    );
    return 0;
  }

  const did: string[] = [];
  const write = (path: string, text: string, mode: number) => {
    try {
      mkdirSync(dirname(path), { recursive: true, mode: 0o755 });
      writeFileSync(path, text, { mode });
      chmodSync(path, mode); // writeFileSync keeps an existing file's mode
    } catch (err) {
      throw new UserError(`cannot write ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, 1, { cause: err });
    }
    did.push(`wrote ${path} (mode ${mode.toString(8).padStart(4, "0")})`);
  };
  write(configPath, yaml, 0o600);
  if (env.WANWATCH_SECRET && !existsSync(secretFile)) write(secretFile, env.WANWATCH_SECRET.trim() + "\n", 0o600);
  else if (!existsSync(secretFile)) did.push(`secret file ${secretFile} does not exist yet: put the secret from \`wanwatch site enroll\` there (mode 0600)`);
  write(unitPath, unit, 0o644);
  if (systemd) {
    try {
      await execa("systemctl", ["daemon-reload"]);
      await execa("systemctl", ["enable", "--now", "wanwatch"]);
      did.push("ran systemctl enable --now wanwatch");
    } catch (err) {
      throw new UserError(`systemctl enable --now wanwatch failed: ${(err as { shortMessage?: string }).shortMessage ?? (err as Error).message}`, 1, { cause: err });
    }
  } else did.push("systemd is not running on this host: start the agent yourself with `wanwatch agent run`");
  out(did.join("\n"));
  return 0;
}
