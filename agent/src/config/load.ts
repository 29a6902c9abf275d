// Agent config: a YAML (or JSON) file → a typed AgentConfig, or one readable line per problem.
import { accessSync, constants, existsSync, readFileSync } from "node:fs";
import { networkInterfaces } from "node:os";
import { parse as parseYaml } from "yaml";
import { issueLines } from "#shared";
import { UserError } from "../lib/errors.ts";
import { AgentConfig, DEPRECATED_TUNNEL_RESTART } from "./schema.ts";

export const DEFAULT_CONFIG_PATH = "/etc/wanwatch/agent.yaml";

/**
 * A config that cannot be used; `lines` has one line per problem. The CLI exits with 2, and when
 * fields are wrong (`fields`) it points to the reference after the problems.
 */
export class ConfigError extends UserError {
  readonly file: string;
  constructor(file: string, lines: string[], options?: { cause?: unknown; fields?: boolean }) {
    super(`${file}: ${lines.length} problem${lines.length === 1 ? "" : "s"}`, 2, { cause: options?.cause, lines });
    this.file = file;
    this.fields = options?.fields ?? false;
  }
  readonly fields: boolean;
}

export interface HostFacts {
  interfaceExists(name: string): boolean;
  /** Null when readable, else why not. */
  unreadable(path: string): string | null;
}

/**
 * The real host: an interface with an address (asked of the kernel, in this network namespace), or
 * one /sys/class/net lists (interfaces without addresses too). Either alone can miss: a sysfs
 * mounted in another namespace (some containers) shows that namespace's interfaces.
 */
export const realHost: HostFacts = {
  interfaceExists(name) {
    return name in networkInterfaces() || existsSync(`/sys/class/net/${name}`);
  },
  unreadable(path) {
    try {
      accessSync(path, constants.R_OK);
      return null;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      return code === "ENOENT"
        ? "does not exist"
        : code === "EACCES"
          ? "is not readable by this user"
          : String((err as Error).message);
    }
  },
};

/** Text → unvalidated object; YAML is a superset of JSON, so one parser reads both. */
function parseText(file: string, text: string): unknown {
  try {
    return parseYaml(text, { prettyErrors: true });
  } catch (err) {
    const first = String((err as Error).message).split("\n")[0];
    throw new ConfigError(file, [`config: ${file} is not valid YAML or JSON: ${first}`], { cause: err });
  }
}

/** Checks that need the host: do the interfaces exist, can the secret be read. */
export function hostProblems(config: AgentConfig, host: HostFacts = realHost): string[] {
  const lines: string[] = [];
  config.uplinks.forEach((u, i) => {
    if (!host.interfaceExists(u.interface))
      lines.push(`uplinks[${i}].interface: interface "${u.interface}" does not exist`);
  });
  const why = host.unreadable(config.secretFile);
  if (why) lines.push(`secretFile: ${config.secretFile} ${why}`);
  return lines;
}

/** Validates an already parsed document; `file` only names it in messages. */
export function parseConfig(file: string, doc: unknown): AgentConfig {
  if (doc === null || doc === undefined) throw new ConfigError(file, [`config: ${file} is empty`]);
  const r = AgentConfig.safeParse(doc);
  if (!r.success) throw new ConfigError(file, issueLines(r.error), { cause: r.error, fields: true });
  return r.data;
}

export interface LoadOptions {
  /** Check interfaces and the secret file on this host (the daemon and doctor do; tests may not). */
  host?: HostFacts | false;
  /** Told about settings that still work under an old name. */
  onDeprecated?: (line: string) => void;
}

/** Old spellings the schema still reads, one line each. */
function deprecations(doc: unknown): string[] {
  const tunnels = (doc as { tunnels?: unknown } | null)?.tunnels;
  return tunnels && typeof tunnels === "object" && "restart" in tunnels && !("backend" in tunnels)
    ? [DEPRECATED_TUNNEL_RESTART]
    : [];
}

export function loadConfig(file: string, opts: LoadOptions = {}): AgentConfig {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why =
      code === "ENOENT"
        ? "does not exist"
        : code === "EACCES"
          ? "is not readable by this user"
          : (err as Error).message;
    throw new ConfigError(file, [`config: ${file} ${why}`], { cause: err });
  }
  const doc = parseText(file, text);
  const config = parseConfig(file, doc);
  for (const line of deprecations(doc)) opts.onDeprecated?.(`${file}: ${line}`);
  if (opts.host !== false) {
    const lines = hostProblems(config, opts.host ?? realHost);
    if (lines.length) throw new ConfigError(file, lines);
  }
  return config;
}

/** The agent's secret: the file's first line, trimmed. */
export function readSecret(file: string): string {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    throw new UserError(
      `secretFile: cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
      2,
      { cause: err },
    );
  }
  const secret = text.split("\n")[0]!.trim();
  if (secret.length < 16)
    throw new UserError(
      `secretFile: ${file} does not hold a secret (expected the value \`wanwatch site enroll\` printed)`,
      2,
    );
  return secret;
}
