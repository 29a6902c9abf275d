// A command described once: its flags (each with the help a person reads), its examples, and the
// parser built from them. `--help` and usage errors come from the same description.
import { parseArgs } from "node:util";
import { UsageError } from "../lib/errors.ts";

export interface Flag {
  type: "string" | "boolean";
  multiple?: boolean;
  /** The value's placeholder in help, e.g. URL. */
  value?: string;
  help: string;
}

export interface CommandSpec {
  /** As typed after `wanwatch`, e.g. "agent install". */
  name: string;
  summary: string;
  /** Positional arguments, e.g. ["FILE"]. */
  positionals?: string[];
  flags: Record<string, Flag>;
  examples: string[];
  /** Extra lines at the end of the help (environment variables, notes). */
  notes?: string[];
}

export const seeHelp = (spec: CommandSpec) => `see \`wanwatch ${spec.name} --help\``;

export function helpText(spec: CommandSpec): string {
  const names = Object.entries(spec.flags).map(
    ([n, f]) => `--${n}${f.value ? ` ${f.value}` : ""}${f.multiple ? " (repeatable)" : ""}`,
  );
  const width = Math.min(34, Math.max(0, ...names.map((n) => n.length)));
  const flagLines = Object.values(spec.flags).map((f, i) => `  ${names[i]!.padEnd(width)}  ${f.help}`);
  return [
    `wanwatch ${spec.name}${spec.positionals?.length ? ` ${spec.positionals.join(" ")}` : ""}${flagLines.length ? " [flags]" : ""}: ${spec.summary}`,
    ...(flagLines.length ? ["", "flags:", ...flagLines, `  ${"--help".padEnd(width)}  this help`] : []),
    "",
    "examples:",
    ...spec.examples.map((e) => `  ${e}`),
    ...(spec.notes?.length ? ["", ...spec.notes] : []),
  ].join("\n");
}

type Values = Record<string, string | boolean | string[] | undefined>;

/** Parses `args` by the spec; a usage mistake is one line naming the help to read. */
export function parseCommand(spec: CommandSpec, args: string[]): { values: Values; positionals: string[] } {
  const options = Object.fromEntries(
    Object.entries(spec.flags).map(([n, f]) => [n, { type: f.type, ...(f.multiple ? { multiple: true } : {}) }]),
  );
  let r: ReturnType<typeof parseArgs>;
  try {
    r = parseArgs({ args, options, allowPositionals: true, strict: true });
  } catch (err) {
    // node's own text ("Unknown option '--x'. To specify a positional argument…"): its first sentence.
    throw new UsageError(`${(err as Error).message.split(/\.\s|\n/)[0]}: ${seeHelp(spec)}`);
  }
  const max = spec.positionals?.length ?? 0;
  if (r.positionals.length > max) throw new UsageError(`unexpected argument "${r.positionals[max]}": ${seeHelp(spec)}`);
  return { values: r.values as Values, positionals: r.positionals };
}
