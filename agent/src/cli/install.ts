// `wanwatch agent install`: the config (0600), the secret (0600, from stdin: never a flag), the
// bundle in one fixed place, and a systemd unit that is enabled and started where systemd runs.
import { existsSync, mkdirSync, readFileSync, writeFileSync, chmodSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { stringify } from "yaml";
import { issueLines } from "#shared";
import { DEFAULT_CONFIG_PATH } from "../config/load.ts";
import { AgentConfig } from "../config/schema.ts";
import { CONFIG_REFERENCE } from "../config/reference.ts";
import { CONFIG_FLAGS, FIELD_FLAGS, configFromFlags } from "../install/config-flags.ts";
import { chown, ensureUser, placeBundle, systemctl, systemdRuns, bundlePaths } from "../install/host-setup.ts";
import { PROBE_USER, SERVICE, unitFile } from "../install/unit.ts";
import { waitForEdge } from "../install/wait-for-edge.ts";
import { UsageError, UserError } from "../lib/errors.ts";
import { parseCommand, type CommandSpec } from "./command.ts";
import { edgeUrl } from "./edge-url.ts";

const UNIT_PATH = `/etc/systemd/system/${SERVICE}`;

export const INSTALL: CommandSpec = {
  name: "agent install",
  summary: "set this host up as an agent: config, secret, the bundle under /usr/local, a systemd unit, started",
  flags: {
    ...CONFIG_FLAGS,
    "secret-stdin": {
      type: "boolean",
      help: "read the secret `wanwatch site enroll` printed from standard input (never give it as a flag)",
    },
    config: { type: "string", value: "FILE", help: `where to write the config (default ${DEFAULT_CONFIG_PATH})` },
    unit: { type: "string", value: "FILE", help: `where to write the unit (default ${UNIT_PATH})` },
    prefix: {
      type: "string",
      value: "DIR",
      help: "install the bundle as DIR/lib/wanwatch/wanwatch.mjs and DIR/bin/wanwatch (default /usr/local)",
    },
    "dry-run": { type: "boolean", help: "print the config and the unit, change nothing" },
  },
  examples: [
    "wanwatch agent install --edge https://wanwatch.example.workers.dev --site office --agent sbc1 --role probe --uplink isp1 --secret-stdin < secret.txt",
    "wanwatch agent install --edge https://wanwatch.example.workers.dev --site office --agent srv1 --role server --uplink isp1=eth0 --uplink isp2=eth1 --switch nmcli --connection isp1='Wired 1' --connection isp2=lte --tunnel swarm --tunnel-service cloudflared --ready-url http://127.0.0.1:2000/ready --secret-stdin",
  ],
  notes: [`Every flag sets one config field; the reference: ${CONFIG_REFERENCE}.`],
};

/** The interface of the IPv4 default route with the lowest metric, from /proc/net/route. */
export function defaultRouteInterface(routeTable = "/proc/net/route"): string | null {
  try {
    const rows = readFileSync(routeTable, "utf8")
      .trim()
      .split("\n")
      .slice(1)
      .map((l) => l.trim().split(/\s+/));
    const defaults = rows
      .filter((r) => r[1] === "00000000" && r[7] === "00000000")
      .sort((a, b) => Number(a[6]) - Number(b[6]));
    return defaults[0]?.[0] ?? null;
  } catch {
    return null;
  }
}

/** A schema problem, with the flag that sets the field. */
function withFlag(line: string): string {
  const field = line
    .slice(0, line.indexOf(":"))
    .replace(/\[\d+\]/g, "[]")
    .replace(/^tunnels\.replicas\..*/, "tunnels.replicas");
  const flag = FIELD_FLAGS[field];
  return flag ? `${line} (--${flag})` : line;
}

async function readStdinSecret(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  const secret = Buffer.concat(chunks).toString("utf8").split("\n")[0]!.trim();
  if (secret.length < 16)
    throw new UsageError(
      "--secret-stdin: standard input holds no secret (pipe in the value `wanwatch site enroll` printed)",
    );
  return secret;
}

function writeFile(path: string, text: string, mode: number): void {
  try {
    mkdirSync(dirname(path), { recursive: true, mode: 0o755 });
    writeFileSync(path, text, { mode });
    chmodSync(path, mode); // writeFileSync keeps an existing file's mode
  } catch (err) {
    throw new UserError(`cannot write ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, 1, {
      cause: err,
    });
  }
}

export async function install(args: string[], out: (s: string) => void): Promise<number> {
  const { values } = parseCommand(INSTALL, args);
  const v = values as Record<string, string | string[] | boolean | undefined>;
  for (const f of ["edge", "site", "agent", "role"])
    if (!v[f]) throw new UsageError(`--${f} is required: see \`wanwatch agent install --help\``);
  edgeUrl(v.edge as string);
  const doc = configFromFlags(v as Parameters<typeof configFromFlags>[0], INSTALL, defaultRouteInterface, (p) =>
    resolve(p),
  );
  const checked = AgentConfig.safeParse(doc);
  if (!checked.success) {
    const lines = issueLines(checked.error).map(withFlag);
    throw new UserError(lines[0]!, 2, { lines });
  }
  const config = checked.data;
  const configPath = resolve((v.config as string | undefined) ?? DEFAULT_CONFIG_PATH);
  const unitPath = resolve((v.unit as string | undefined) ?? UNIT_PATH);
  const prefix = resolve((v.prefix as string | undefined) ?? "/usr/local");
  const yaml = `# wanwatch agent config, written by \`wanwatch agent install\`. Reference: ${CONFIG_REFERENCE}.\n${stringify(doc)}`;
  const unit = unitFile({ config, configPath, node: process.execPath, bundle: bundlePaths(prefix).bundle });
  const systemd = systemdRuns();
  // The unit's sandbox hides these folders: a Node from a version manager there would not start.
  const hiddenNode = /^\/(home|root|tmp|var\/tmp)\//.test(process.execPath)
    ? [
        `note: the unit runs ${process.execPath}, in a folder its sandbox hides (ProtectHome, PrivateTmp): install Node system-wide (apt install nodejs) and run install with it`,
      ]
    : [];
  const probeUser = config.role === "probe" && systemd;

  if (v["dry-run"]) {
    out(
      [
        "# dry run: nothing written",
        `==> ${configPath} (mode 0600) <==`,
        yaml.trimEnd(),
        `==> ${unitPath} (mode 0644) <==`,
        unit.trimEnd(),
        "==> then <==",
        `# would install the bundle as ${bundlePaths(prefix).bundle} and ${bundlePaths(prefix).bin}`,
        systemd
          ? `# would run: systemctl daemon-reload && systemctl enable ${SERVICE} && systemctl restart ${SERVICE}`
          : "# systemd is not running on this host: would print the command to start the agent",
        ...hiddenNode.map((l) => `# ${l}`),
      ].join("\n"),
    );
    return 0;
  }

  const secret = v["secret-stdin"] ? await readStdinSecret() : null;
  const did: string[] = [...hiddenNode];
  const placed = placeBundle(process.argv[1]!, prefix);
  did.push(`installed ${placed.bundle} and ${placed.bin}`);
  const owner = probeUser ? await ensureUser(PROBE_USER) : null;
  if (owner?.created) did.push(`created the system user ${PROBE_USER} (the probe runs as it)`);
  writeFile(configPath, yaml, 0o600);
  did.push(`wrote ${configPath} (mode 0600)`);
  if (secret) {
    writeFile(config.secretFile, `${secret}\n`, 0o600);
    did.push(`wrote ${config.secretFile} (mode 0600)`);
  } else if (!existsSync(config.secretFile))
    did.push(
      `secret file ${config.secretFile} does not exist yet: put the secret from \`wanwatch site enroll\` there (mode 0600), or run again with --secret-stdin`,
    );
  if (owner) {
    for (const p of [configPath, config.secretFile]) if (existsSync(p)) chown(p, owner);
    if (!existsSync(config.stateDir) && config.stateDir !== "/var/lib/wanwatch") {
      mkdirSync(config.stateDir, { recursive: true, mode: 0o700 });
      chown(config.stateDir, owner);
    }
  }
  writeFile(unitPath, unit, 0o644);
  did.push(`wrote ${unitPath}`);
  if (!systemd) {
    did.push(
      `systemd is not running on this host: start the agent with\n  ${placed.bin} agent run --config ${configPath}`,
    );
    out(did.join("\n"));
    return 0;
  }
  await systemctl("daemon-reload");
  await systemctl("enable", SERVICE);
  // restart, not start: installing again (a new config, a new bundle) must take effect.
  const startedAt = Date.now();
  await systemctl("restart", SERVICE);
  did.push(`started ${SERVICE} (enabled at boot)`);
  out(did.join("\n"));
  out(await waitForEdge(config, startedAt));
  return 0;
}
