// Structured log: one JSON object per line on stdout, one line per decision. Secrets and
// signatures never reach it: fields with those names are dropped, whatever the caller passed.

export type Level = "debug" | "info" | "warn" | "error";
export type Fields = Record<string, unknown>;

export interface Logger {
  debug(msg: string, fields?: Fields): void;
  info(msg: string, fields?: Fields): void;
  warn(msg: string, fields?: Fields): void;
  error(msg: string, fields?: Fields): void;
  child(fields: Fields): Logger;
}

const REDACTED = /^(secret|sig|signature|signingKey|key|token|authorization|x-wanwatch-sig)$/i;
const ORDER: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40 };

function clean(fields: Fields): Fields {
  const out: Fields = {};
  for (const [k, v] of Object.entries(fields)) {
    if (REDACTED.test(k) || v === undefined) continue;
    out[k] = v instanceof Error ? v.message : v;
  }
  return out;
}

export function createLogger(
  opts: { write?: (line: string) => void; now?: () => number; level?: Level; base?: Fields } = {},
): Logger {
  const write = opts.write ?? ((line: string) => process.stdout.write(`${line}\n`));
  const now = opts.now ?? Date.now;
  const min = ORDER[opts.level ?? "info"];
  const base = clean(opts.base ?? {});
  const emit = (level: Level, msg: string, fields: Fields = {}) => {
    if (ORDER[level] < min) return;
    write(JSON.stringify({ time: new Date(now()).toISOString(), level, msg, ...base, ...clean(fields) }));
  };
  return {
    debug: (m, f) => emit("debug", m, f),
    info: (m, f) => emit("info", m, f),
    warn: (m, f) => emit("warn", m, f),
    error: (m, f) => emit("error", m, f),
    child: (fields) => createLogger({ write, now, level: opts.level, base: { ...base, ...clean(fields) } }),
  };
}
