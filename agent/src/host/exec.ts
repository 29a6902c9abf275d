// Every host command goes through here: argv arrays (never a shell string), a timeout, and an
// error that names the command and what it printed, in one line a user can act on.
import { execa } from "execa";

export interface RunOptions {
  timeoutMs?: number;
  /** Extra environment (merged over the agent's own). */
  env?: Record<string, string>;
  /** Aborts the command (SIGTERM, then SIGKILL after 2 s). */
  signal?: AbortSignal;
  /** Written to the command's stdin (otherwise it has none). */
  input?: string;
}

export class CommandError extends Error {
  readonly argv: readonly string[];
  readonly exitCode: number | undefined;
  constructor(message: string, argv: readonly string[], exitCode: number | undefined) {
    super(message);
    this.argv = argv;
    this.exitCode = exitCode;
  }
}

const DEFAULT_TIMEOUT_MS = 15_000;

/** Runs `argv` and returns its stdout; throws a CommandError on failure, timeout or a missing program. */
export async function run(argv: readonly string[], o: RunOptions = {}): Promise<string> {
  const [file, ...args] = argv;
  if (!file) throw new CommandError("empty command", argv, undefined);
  const shown = argv.join(" ");
  const r = await execa(file, args, {
    timeout: o.timeoutMs ?? DEFAULT_TIMEOUT_MS,
    cancelSignal: o.signal,
    forceKillAfterDelay: 2_000,
    env: o.env,
    ...(o.input === undefined ? { stdin: "ignore" as const } : { input: o.input }),
    reject: false,
    stripFinalNewline: true,
  });
  if (r.failed) {
    const said = (r.stderr || r.stdout || "").toString().trim().split("\n").filter(Boolean).at(-1);
    const why =
      (r as { code?: string }).code === "ENOENT"
        ? `${file}: command not found`
        : r.timedOut
          ? `\`${shown}\` timed out after ${o.timeoutMs ?? DEFAULT_TIMEOUT_MS} ms`
          : r.isCanceled
            ? `\`${shown}\` was cancelled`
            : `\`${shown}\` failed (${r.exitCode !== undefined ? `exit ${r.exitCode}` : (r.signal ?? "killed")})${said ? `: ${said}` : ""}`;
    throw new CommandError(why, argv, r.exitCode);
  }
  return r.stdout.toString();
}
