// Errors that a user reads: one line, with the cause chain kept for the log.

/** The first line of an error's message, with its causes appended ("x: y: z"). */
export function describeError(err: unknown): string {
  const parts: string[] = [];
  let e: unknown = err;
  for (let depth = 0; e !== undefined && e !== null && depth < 5; depth++) {
    const msg = e instanceof Error ? e.message : String(e);
    const line = msg.split("\n")[0]!.trim();
    if (line && !parts.some((p) => p.includes(line))) parts.push(line);
    e = e instanceof Error ? e.cause : undefined;
  }
  return parts.join(": ") || "unknown error";
}

/** An error whose message is meant for the user as is, with an exit code for the CLI. */
export class UserError extends Error {
  readonly exitCode: number;
  constructor(message: string, exitCode = 1, options?: { cause?: unknown; lines?: string[] }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.exitCode = exitCode;
    this.lines = options?.lines ?? [message];
  }
  readonly lines: string[];
}

/** Wrong use of the command line: exit code 2. */
export class UsageError extends UserError {
  constructor(message: string) {
    super(message, 2);
  }
}
