// The `wanwatch` command: dispatch, help, and the one place errors become exit codes.
import { ConfigError, DEFAULT_CONFIG_PATH } from "../config/load.ts";
import { systemHost } from "../host/index.ts";
import { runDaemon } from "../daemon/run.ts";
import { describeError, UsageError, UserError } from "../lib/errors.ts";
import { VERSION } from "../version.ts";
import { SITE_USAGE, siteCommand } from "./admin.ts";
import { AGENT_STATUS_USAGE, agentStatus } from "./agent-status.ts";
import { parse } from "./args.ts";
import { DOCTOR_USAGE, doctor } from "./doctor.ts";
import { INSTALL_USAGE, install } from "./install.ts";

const RUN_USAGE = `wanwatch agent run [--config F]   (default ${DEFAULT_CONFIG_PATH})`;

export const HELP = `wanwatch ${VERSION}: dual-uplink failover, watched from the edge, applied on every server.

usage: ${RUN_USAGE}
       ${AGENT_STATUS_USAGE}
       ${INSTALL_USAGE}
       ${DOCTOR_USAGE}
       ${SITE_USAGE}
       wanwatch --help | --version

exit codes: 0 ok, 1 failure, 2 usage or config error`;

export interface Io {
  out: (s: string) => void;
  err: (s: string) => void;
  env: NodeJS.ProcessEnv;
}

async function dispatch(argv: string[], io: Io): Promise<number> {
  const [cmd, sub, ...rest] = argv;
  if (cmd === undefined) throw new UsageError(`a command is required\n${HELP}`);
  if (cmd === "--help" || cmd === "-h" || cmd === "help") {
    io.out(HELP);
    return 0;
  }
  if (cmd === "--version" || cmd === "-V" || cmd === "version") {
    io.out(VERSION);
    return 0;
  }
  if (argv.includes("--help") || argv.includes("-h")) {
    io.out(HELP);
    return 0;
  }
  switch (cmd) {
    case "agent":
      switch (sub) {
        case "run": {
          const { values } = parse(rest, { config: { type: "string" } }, { usage: RUN_USAGE });
          return runDaemon(values.config ?? DEFAULT_CONFIG_PATH, systemHost);
        }
        case "status":
          return agentStatus(rest, io.out);
        case "install":
          return install(rest, io.env, io.out);
        case undefined:
          throw new UsageError(`an agent command is required: run, status or install\nusage: ${RUN_USAGE}`);
        default:
          throw new UsageError(`unknown agent command "${sub}": run, status or install`);
      }
    case "doctor":
      return doctor(sub === undefined ? [] : [sub, ...rest], io.out);
    case "site":
      return siteCommand(sub === undefined ? [] : [sub, ...rest], io.env, io.out);
    default:
      throw new UsageError(`unknown command "${cmd}"\n${HELP}`);
  }
}

/** Runs the CLI; returns the exit code. Every error becomes readable lines on stderr. */
export async function main(argv: string[], io: Io): Promise<number> {
  try {
    return await dispatch(argv, io);
  } catch (err) {
    if (err instanceof ConfigError) {
      // One line per problem, named by the field as it appears in the file.
      for (const l of err.lines) io.err(l);
      return err.exitCode;
    }
    if (err instanceof UserError) {
      for (const l of err.lines) io.err(l.startsWith("usage:") || l.startsWith("  ") ? l : `wanwatch: ${l}`);
      return err.exitCode;
    }
    io.err(`wanwatch: ${describeError(err)}`);
    return 1;
  }
}
