// Command-line parsing on node:util's parseArgs: unknown or malformed options are usage errors (exit 2).
import { parseArgs, type ParseArgsConfig } from "node:util";
import { UsageError } from "../lib/errors.ts";

type Options = NonNullable<ParseArgsConfig["options"]>;

export function parse<O extends Options>(args: string[], options: O, opts: { positionals?: number; usage: string }) {
  let r;
  try {
    r = parseArgs({ args, options, allowPositionals: true, strict: true });
  } catch (err) {
    throw new UsageError(`${(err as Error).message.split("\n")[0]}\nusage: ${opts.usage}`);
  }
  const max = opts.positionals ?? 0;
  if (r.positionals.length > max) throw new UsageError(`unexpected argument "${r.positionals[max]}"\nusage: ${opts.usage}`);
  return r as { values: ReturnType<typeof parseArgs<{ options: O; allowPositionals: true; strict: true }>>["values"]; positionals: string[] };
}

export function required(value: string | undefined, flag: string, usage: string): string {
  if (value === undefined || value === "") throw new UsageError(`${flag} is required\nusage: ${usage}`);
  return value;
}
