// `wanwatch agent install`: the config (0600), the secret (0600: from an enrolment token redeemed
// here, or from stdin; never a flag), the bundle in one fixed place, and a systemd unit that is
// enabled and started where systemd runs. A step that fails undoes the ones before it.
import { chmodSync, existsSync, writeFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { stringify } from "yaml";
import { issueLines, tokenSite, type EnrolmentGrant } from "#shared";
import { DEFAULT_CONFIG_PATH, loadConfig } from "../config/load.ts";
import { AgentConfig } from "../config/schema.ts";
import { CONFIG_REFERENCE } from "../config/reference.ts";
import { CONFIG_FLAGS, FIELD_FLAGS, configFromFlags } from "../install/config-flags.ts";
import { defaultRouteInterface } from "../install/detect.ts";
import { enrolledFlags } from "../install/enrolled-flags.ts";
import { chown, ensureUser, placeBundle, systemctl, systemdRuns, bundlePaths } from "../install/host-setup.ts";
import { InstallJournal } from "../install/journal.ts";
import { checkToken, redeemToken } from "../install/redeem.ts";
import { PROBE_USER, SERVICE, unitFile } from "../install/unit.ts";
import { waitForEdge } from "../install/wait-for-edge.ts";
import { describeError, UsageError, UserError } from "../lib/errors.ts";
import { parseCommand, type CommandSpec } from "./command.ts";
import { edgeUrl } from "./edge-url.ts";

const UNIT_PATH = `/etc/systemd/system/${SERVICE}`;

export const INSTALL: CommandSpec = {
  name: "agent install",
  summary: "set this host up as an agent: config, secret, the bundle under /usr/local, a systemd unit, started",
  flags: {
    enroll: {
      type: "string",
      value: "TOKEN",
      help: "the enrolment token `wanwatch site enroll` printed: the edge gives site, agent, role and secret for it (once)",
    },
    ...CONFIG_FLAGS,
    "secret-stdin": {
      type: "boolean",
      help: "read the secret `wanwatch site enroll --secret` printed from standard input (never give it as a flag)",
    },
    config: { type: "string", value: "FILE", help: `where to write the config (default ${DEFAULT_CONFIG_PATH})` },
    unit: { type: "string", value: "FILE", help: `where to write the unit (default ${UNIT_PATH})` },
    prefix: {
      type: "string",
      value: "DIR",
      help: "install the bundle as DIR/lib/wanwatch/wanwatch.mjs and DIR/bin/wanwatch (default /usr/local)",
    },
    "dry-run": {
      type: "boolean",
      help: "print the config and the unit, change nothing (an enrolment token stays unused)",
    },
  },
  examples: [
    "wanwatch agent install --edge https://wanwatch.example.workers.dev --enroll wwe1.office.… --uplink isp1=eth0 --uplink isp2=eth1 --switch nmcli",
    "wanwatch agent install --edge https://wanwatch.example.workers.dev --site office --agent sbc1 --role probe --uplink isp1 --secret-stdin < secret.txt",
  ],
  notes: [
    `Every flag sets one config field; the reference: ${CONFIG_REFERENCE}.`,
    "With --enroll, --site, --agent and --role come from the token; --edge may come from WANWATCH_EDGE.",
    "The one-line install `wanwatch site enroll` prints runs this with --enroll: curl -fsSL https://EDGE/install.sh | sudo sh -s -- TOKEN",
  ],
};

type Values = Record<string, string | string[] | boolean | undefined>;

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

/** Everything an install writes, decided and validated before anything is touched. */
interface Plan {
  config: AgentConfig;
  yaml: string;
  unit: string;
  configPath: string;
  unitPath: string;
  prefix: string;
  systemd: boolean;
  notes: string[];
}

function plan(v: Values): Plan {
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
  const prefix = resolve((v.prefix as string | undefined) ?? "/usr/local");
  // The unit's sandbox hides these folders: a Node from a version manager there would not start.
  const notes = /^\/(home|root|tmp|var\/tmp)\//.test(process.execPath)
    ? [
        `note: the unit runs ${process.execPath}, in a folder its sandbox hides (ProtectHome, PrivateTmp): install Node system-wide (apt install nodejs) and run install with it`,
      ]
    : [];
  return {
    config,
    yaml: `# wanwatch agent config, written by \`wanwatch agent install\`. Reference: ${CONFIG_REFERENCE}.\n${stringify(doc)}`,
    unit: unitFile({ config, configPath, node: process.execPath, bundle: bundlePaths(prefix).bundle }),
    configPath,
    unitPath: resolve((v.unit as string | undefined) ?? UNIT_PATH),
    prefix,
    systemd: systemdRuns(),
    notes,
  };
}

function dryRun(p: Plan, extra: string[] = []): string {
  const { bundle, bin } = bundlePaths(p.prefix);
  return [
    "# dry run: nothing written",
    `==> ${p.configPath} (mode 0600) <==`,
    p.yaml.trimEnd(),
    `==> ${p.unitPath} (mode 0644) <==`,
    p.unit.trimEnd(),
    "==> then <==",
    ...extra,
    `# would install the bundle as ${bundle} and ${bin}`,
    p.systemd
      ? `# would run: systemctl daemon-reload && systemctl enable ${SERVICE} && systemctl restart ${SERVICE}`
      : "# systemd is not running on this host: would print the command to start the agent",
    ...p.notes.map((l) => `# ${l}`),
  ].join("\n");
}

function writeFile(journal: InstallJournal, path: string, text: string, mode: number): void {
  try {
    journal.dir(dirname(path));
    journal.keep(path);
    writeFileSync(path, text, { mode });
    chmodSync(path, mode); // writeFileSync keeps an existing file's mode
  } catch (err) {
    throw new UserError(`cannot write ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, 1, {
      cause: err,
    });
  }
}

/**
 * Writes the plan and starts the service; every step is journalled, and a failing step undoes the
 * ones before it. Returns the lines to print, and the edge's first word on the agent (with systemd).
 */
async function apply(
  p: Plan,
  secret: string | null,
  out: (s: string) => void,
): Promise<{ heard: boolean | null; lines: string[] }> {
  const { config } = p;
  const journal = new InstallJournal();
  const did: string[] = [...p.notes];
  try {
    const { bundle, bin } = bundlePaths(p.prefix);
    for (const path of [bundle, bin]) {
      journal.dir(dirname(path));
      journal.keep(path);
    }
    const placed = placeBundle(process.argv[1]!, p.prefix);
    did.push(`installed ${placed.bundle} and ${placed.bin}`);
    const owner = config.role === "probe" && p.systemd ? await ensureUser(PROBE_USER) : null;
    if (owner?.created) did.push(`created the system user ${PROBE_USER} (the probe runs as it)`);
    writeFile(journal, p.configPath, p.yaml, 0o600);
    did.push(`wrote ${p.configPath} (mode 0600)`);
    if (secret) {
      writeFile(journal, config.secretFile, `${secret}\n`, 0o600);
      did.push(`wrote ${config.secretFile} (mode 0600)`);
    } else if (!existsSync(config.secretFile))
      did.push(
        `secret file ${config.secretFile} does not exist yet: put the secret from \`wanwatch site enroll --secret\` there (mode 0600), or run again with --secret-stdin`,
      );
    if (owner) {
      for (const path of [p.configPath, config.secretFile]) if (existsSync(path)) chown(path, owner);
      if (!existsSync(config.stateDir) && config.stateDir !== "/var/lib/wanwatch") {
        journal.dir(config.stateDir, 0o700);
        chown(config.stateDir, owner);
      }
    }
    if (!p.systemd) {
      writeFile(journal, p.unitPath, p.unit, 0o644);
      did.push(`wrote ${p.unitPath}`);
      did.push(
        `systemd is not running on this host: start the agent with\n  ${placed.bin} agent run --config ${p.configPath}`,
      );
      return { heard: null, lines: did };
    }
    // Taken back after the unit file is restored (journal order is reversed): systemd forgets it.
    journal.step("reload systemd", () => systemctl("daemon-reload"));
    const fresh = !existsSync(p.unitPath);
    writeFile(journal, p.unitPath, p.unit, 0o644);
    did.push(`wrote ${p.unitPath}`);
    await systemctl("daemon-reload");
    if (fresh) journal.step(`stop and disable ${SERVICE}`, () => systemctl("disable", "--now", SERVICE));
    await systemctl("enable", SERVICE);
    // restart, not start: installing again (a new config, a new bundle) must take effect.
    const startedAt = Date.now();
    await systemctl("restart", SERVICE);
    did.push(`started ${SERVICE} (enabled at boot)`);
    out(did.join("\n"));
    const edge = await waitForEdge(config, startedAt);
    return { heard: edge.heard, lines: [edge.line] };
  } catch (err) {
    const left = await journal.rollback();
    const lines = err instanceof UserError ? err.lines : [describeError(err)];
    throw new UserError(lines[0]!, err instanceof UserError ? err.exitCode : 1, {
      cause: err,
      lines: [
        ...lines,
        left.length
          ? "  undone what could be; left behind:"
          : "  every step before it was undone: nothing is installed",
        ...left.map((l) => `  ${l}`),
      ],
    });
  }
}

/** A host that already runs another agent gives it up: said, so its enrolment can be revoked. */
function previousAgent(configPath: string, g: EnrolmentGrant): string[] {
  if (!existsSync(configPath)) return [];
  try {
    const old = loadConfig(configPath, { host: false });
    return old.agent === g.agent && old.site === g.site
      ? []
      : [
          `this host was agent ${old.agent} of site ${old.site}: replaced (if nothing else runs it, \`wanwatch site revoke --id ${old.agent} --site ${old.site}\`)`,
        ];
  } catch {
    return [`replacing the config at ${configPath}, which did not load`];
  }
}

/** `--enroll TOKEN`: checked and planned before the token is spent; after, a failure undoes the install and says what to do. */
async function installEnrolled(v: Values, out: (s: string) => void): Promise<number> {
  for (const f of ["site", "agent", "role", "secret-stdin"])
    if (v[f] !== undefined) throw new UsageError(`--${f} comes from the enrolment token: omit it`);
  const token = v.enroll as string;
  if (!tokenSite(token))
    throw new UsageError(
      "--enroll: not an enrolment token (one reads wwe1.SITE.… as `wanwatch site enroll` printed it)",
    );
  const edgeText = (v.edge as string | undefined) ?? process.env.WANWATCH_EDGE;
  if (!edgeText) throw new UsageError("--edge URL is required with --enroll (or WANWATCH_EDGE)");
  const edge = edgeUrl(edgeText);
  const grant = await checkToken(edge, token);
  const { flags, found } = await enrolledFlags(grant, { ...v, edge: edgeText });
  const p = plan(flags);
  const who = `agent ${grant.agent} (${grant.role}${grant.uplink ? ` behind ${grant.uplink}` : ""}) in site ${grant.site}`;
  if (v["dry-run"]) {
    out(dryRun(p, [`# would redeem the enrolment token for ${who} (it stays unused)`, ...found.map((l) => `# ${l}`)]));
    return 0;
  }
  const replaced = previousAgent(p.configPath, grant);
  const redeemed = await redeemToken(edge, token);
  out([`enrolled ${who}: the edge gave this host its secret`, ...found, ...replaced].join("\n"));
  try {
    const r = await apply(p, redeemed.secret, out);
    out(r.lines.join("\n"));
    return r.heard === false ? 1 : 0;
  } catch (err) {
    const e = err as UserError;
    throw new UserError(e.lines[0]!, e.exitCode, {
      cause: err,
      lines: [
        ...e.lines,
        `  the token is spent and ${who} is enrolled with no host: on your workstation run \`wanwatch site revoke --id ${grant.agent} --site ${grant.site}\`, then \`wanwatch site enroll\` again for a new line`,
      ],
    });
  }
}

export async function install(args: string[], out: (s: string) => void): Promise<number> {
  const { values } = parseCommand(INSTALL, args);
  const v = values as Values;
  if (v.enroll !== undefined) return installEnrolled(v, out);
  for (const f of ["edge", "site", "agent", "role"])
    if (!v[f]) throw new UsageError(`--${f} is required (or --enroll TOKEN): see \`wanwatch agent install --help\``);
  const p = plan(v);
  if (v["dry-run"]) {
    out(dryRun(p));
    return 0;
  }
  const secret = v["secret-stdin"] ? await readStdinSecret() : null;
  const r = await apply(p, secret, out);
  out(r.lines.join("\n"));
  return 0;
}
