// The agent's files in stateDir. state.json: what a restart must resume from (written only when
// it changes). status.json: this host's live view for `wanwatch agent status` (written at most
// every few seconds: SBCs run on SD cards).
import {
  mkdirSync,
  readFileSync,
  renameSync,
  writeFileSync,
  openSync,
  fsyncSync,
  closeSync,
  unlinkSync,
} from "node:fs";
import { dirname, join } from "node:path";
import { z } from "zod";
import { Directive } from "#shared";

const Generation = z.int().min(0).nullable();

export const SavedState = z.object({
  version: z.literal(1),
  directive: Directive.nullable(),
  appliedGeneration: Generation,
  tunnelGeneration: Generation,
  lastError: z.string().nullable(),
  savedAt: z.int(),
});
export type SavedState = z.infer<typeof SavedState>;

/** An uplink's IPv6 channel, where it has one (absent in an older agent's file). */
export const Ipv6ChannelView = z.object({
  localAddress: z.string(),
  transport: z.enum(["websocket", "http"]).nullable(),
  lastContactAt: z.int().nullable(),
  rttMs: z.number().nullable(),
});
export type Ipv6ChannelView = z.infer<typeof Ipv6ChannelView>;

export const UplinkView = z.object({
  transport: z.enum(["websocket", "http"]).nullable(),
  lastContactAt: z.int().nullable(),
  rttMs: z.number().nullable(),
  error: z.string().nullable(),
  localAddress: z.string().nullable(),
  ipv6: Ipv6ChannelView.nullable().optional(),
});
export type UplinkView = z.infer<typeof UplinkView>;

/** A pinned tunnel replica (`tunnels.backend: pinned`), per uplink. */
export const ReplicaView = z.object({
  restarting: z.boolean(),
  restartedAt: z.int().nullable(),
  lastError: z.string().nullable(),
  retryAt: z.int().nullable(),
});
export type ReplicaView = z.infer<typeof ReplicaView>;

export const StatusFile = z.object({
  version: z.literal(1),
  pid: z.int(),
  agent: z.string(),
  site: z.string(),
  role: z.string(),
  edge: z.string(),
  startedAt: z.int(),
  updatedAt: z.int(),
  stoppedAt: z.int().nullable(),
  clockOffsetMs: z.number(),
  directive: Directive.nullable(),
  appliedGeneration: Generation,
  tunnelGeneration: Generation,
  lastError: z.string().nullable(),
  routedUplink: z.string().nullable(),
  uplinks: z.record(z.string(), UplinkView),
  // The edge refusing this agent for a reason of its setup, with the fix; cleared by an answer.
  refusal: z.object({ code: z.string(), message: z.string(), fix: z.string(), at: z.int() }).nullable().optional(),
  replicas: z.record(z.string(), ReplicaView).optional(),
});
export type StatusFile = z.infer<typeof StatusFile>;

export const statePath = (stateDir: string) => join(stateDir, "state.json");
export const statusPath = (stateDir: string) => join(stateDir, "status.json");

/**
 * Write-then-rename: a crash mid-write leaves the old file, never half a file. `durable` adds an
 * fsync before the rename (state.json); status.json skips it: it is rewritten every few seconds
 * and SD cards wear.
 */
export function writeFileAtomic(path: string, text: string, mode = 0o644, durable = true): void {
  const tmp = `${path}.${process.pid}.tmp`;
  try {
    mkdirSync(dirname(path), { recursive: true, mode: 0o755 });
    writeFileSync(tmp, text, { mode });
    if (durable) {
      const fd = openSync(tmp, "r");
      try {
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
    }
    renameSync(tmp, path);
  } catch (err) {
    try {
      unlinkSync(tmp);
    } catch {
      // Nothing left behind, or nothing we can do.
    }
    throw new Error(`cannot write ${path}`, { cause: err });
  }
}

function readJson<T>(
  path: string,
  schema: z.ZodType<T>,
): { ok: true; value: T } | { ok: false; missing: boolean; error: string } {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    const missing = (err as NodeJS.ErrnoException).code === "ENOENT";
    return {
      ok: false,
      missing,
      error: missing ? `${path} does not exist` : `cannot read ${path}: ${(err as Error).message}`,
    };
  }
  try {
    const r = schema.safeParse(JSON.parse(text));
    return r.success
      ? { ok: true, value: r.data }
      : { ok: false, missing: false, error: `${path} is not a wanwatch state file` };
  } catch {
    return { ok: false, missing: false, error: `${path} is not JSON` };
  }
}

export function readState(stateDir: string) {
  return readJson(statePath(stateDir), SavedState);
}

export function writeState(stateDir: string, s: Omit<SavedState, "version">): void {
  writeFileAtomic(statePath(stateDir), `${JSON.stringify({ version: 1, ...s }, null, 2)}\n`);
}

export function readStatus(stateDir: string) {
  return readJson(statusPath(stateDir), StatusFile);
}

export function writeStatus(stateDir: string, s: Omit<StatusFile, "version">): void {
  writeFileAtomic(statusPath(stateDir), `${JSON.stringify({ version: 1, ...s }, null, 2)}\n`, 0o644, false);
}
