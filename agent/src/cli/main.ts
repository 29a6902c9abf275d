// The `wanwatch` command: dispatch, help, and the one place errors become exit codes.
import { ConfigError, DEFAULT_CONFIG_PATH } from "../config/load.ts";
import { SEE_REFERENCE } from "../config/reference.ts";
import { systemHost } from "../host/index.ts";
import { runDaemon } from "../daemon/run.ts";
import { describeError, UsageError, UserError } from "../lib/errors.ts";
import { VERSION } from "../version.ts";
import { SITE_COMMANDS, siteCommand } from "./admin.ts";
import { AGENT_STATUS, agentStatus } from "./agent-status.ts";
import { helpText, parseCommand, type CommandSpec } from "./command.ts";
import { DOCTOR, doctor } from "./doctor.ts";
import { INSTALL, install } from "./install.ts";
import { UNINSTALL, uninstall } from "./uninstall.ts";
import { UNROUTE, unroute } from "./unroute.ts";

const RUN: CommandSpec = {
  name: "agent run",
  summary: "run the agent in the foreground (what the systemd unit runs)",
  flags: { config: { type: "string", value: "FILE", help: `the agent's config (default ${DEFAULT_CONFIG_PATH})` } },
  examples: ["wanwatch agent run --config /etc/wanwatch/agent.yaml"],
};

export interface Io {
  out: (s: string) => void;
  err: (s: string) => void;
  env: NodeJS.ProcessEnv;
}

interface Command {
  spec: CommandSpec;
  run: (args: string[], io: Io) => Promise<number> | number;
}

const COMMANDS: Command[] = [
  {
    spec: RUN,
    run: (args) =>
      runDaemon((parseCommand(RUN, args).values.config as string | undefined) ?? DEFAULT_CONFIG_PATH, systemHost),
  },
  { spec: AGENT_STATUS, run: (args, io) => agentStatus(args, io.out) },
  { spec: INSTALL, run: (args, io) => install(args, io.out) },
  { spec: UNINSTALL, run: (args, io) => uninstall(args, io.out) },
  { spec: UNROUTE, run: (args, io) => unroute(args, io.out) },
  { spec: DOCTOR, run: (args, io) => doctor(args, io.out) },
  ...(Object.keys(SITE_COMMANDS) as (keyof typeof SITE_COMMANDS)[]).map((sub) => ({
    spec: SITE_COMMANDS[sub],
    run: (args: string[], io: Io) => siteCommand(sub, args, io.env, io.out),
  })),
];

export const HELP = [
  `wanwatch ${VERSION}: dual-uplink failover, watched from the edge, applied on every server.`,
  "",
  "commands:",
  ...COMMANDS.map((c) => `  wanwatch ${c.spec.name.padEnd(16)} ${c.spec.summary}`),
  "",
  "`wanwatch COMMAND --help` explains each flag, with examples.",
  "exit codes: 0 ok, 1 failure, 2 usage or config error",
].join("\n");

const wantsHelp = (args: string[]) => args.includes("--help") || args.includes("-h");

async function dispatch(argv: string[], io: Io): Promise<number> {
  const [cmd, sub] = argv;
  if (cmd === undefined) throw new UsageError("a command is required: see `wanwatch --help`");
  if (cmd === "--help" || cmd === "-h" || cmd === "help") {
    io.out(HELP);
    return 0;
  }
  if (cmd === "--version" || cmd === "-V" || cmd === "version") {
    io.out(VERSION);
    return 0;
  }
  const group = COMMANDS.filter((c) => c.spec.name.split(" ")[0] === cmd);
  if (!group.length) throw new UsageError(`unknown command "${cmd}": see \`wanwatch --help\``);
  // "doctor" stands alone; "agent …" and "site …" take a subcommand.
  const single = group.find((c) => c.spec.name === cmd);
  const found = single ?? group.find((c) => c.spec.name === `${cmd} ${sub}`);
  const choices = group.map((c) => c.spec.name.split(" ")[1]).join(", ");
  if (!found) {
    if (wantsHelp(argv)) {
      io.out(group.map((c) => `wanwatch ${c.spec.name.padEnd(16)} ${c.spec.summary}`).join("\n"));
      return 0;
    }
    if (sub === undefined)
      throw new UsageError(`${cmd === "agent" ? "an" : "a"} ${cmd} command is required: ${choices}`);
    throw new UsageError(`unknown ${cmd} command "${sub}": ${choices}`);
  }
  const args = argv.slice(single ? 1 : 2);
  if (wantsHelp(args)) {
    io.out(helpText(found.spec));
    return 0;
  }
  return found.run(args, io);
}

/** Runs the CLI; returns the exit code. Every error becomes readable lines on stderr. */
export async function main(argv: string[], io: Io): Promise<number> {
  try {
    return await dispatch(argv, io);
  } catch (err) {
    if (err instanceof ConfigError) {
      // One line per problem, named by the field as it appears in the file.
      for (const l of err.lines) io.err(l);
      if (err.fields) io.err(SEE_REFERENCE);
      return err.exitCode;
    }
    if (err instanceof UserError) {
      for (const l of err.lines) io.err(l.startsWith("  ") ? l : `wanwatch: ${l}`);
      return err.exitCode;
    }
    io.err(`wanwatch: ${describeError(err)}`);
    return 1;
  }
}
