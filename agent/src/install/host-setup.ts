// What `agent install` and `agent uninstall` change on the host besides files: the service user,
// systemd, and the running bundle copied to one fixed place.
import {
  chownSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  readFileSync,
  readlinkSync,
  realpathSync,
  rmSync,
  symlinkSync,
} from "node:fs";
import { dirname, join, relative } from "node:path";
import { execa } from "execa";
import { UserError } from "../lib/errors.ts";

/** Where the bundle goes under a prefix (default /usr/local): lib/wanwatch/wanwatch.mjs and bin/wanwatch. */
export function bundlePaths(prefix: string): { bundle: string; bin: string } {
  return { bundle: join(prefix, "lib/wanwatch/wanwatch.mjs"), bin: join(prefix, "bin/wanwatch") };
}

/** Copies the running bundle to its fixed place (the unit must not run it from wherever it was typed). */
export function placeBundle(running: string, prefix: string): { bundle: string; bin: string; copied: boolean } {
  const p = bundlePaths(prefix);
  const from = realpathSync(running);
  const copied = !existsSync(p.bundle) || realpathSync(p.bundle) !== from;
  try {
    mkdirSync(dirname(p.bundle), { recursive: true, mode: 0o755 });
    if (copied) copyFileSync(from, p.bundle);
    mkdirSync(dirname(p.bin), { recursive: true, mode: 0o755 });
    rmSync(p.bin, { force: true });
    symlinkSync(relative(dirname(p.bin), p.bundle), p.bin);
  } catch (err) {
    throw new UserError(
      `cannot install the bundle under ${prefix}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
      1,
      { cause: err },
    );
  }
  return { ...p, copied };
}

/** systemd as PID 1: the only case where `systemctl enable --now` can work. */
export function systemdRuns(): boolean {
  if (existsSync("/run/systemd/system")) return true;
  try {
    return readlinkSync("/proc/1/exe").includes("systemd");
  } catch {
    return false;
  }
}

export async function systemctl(...args: string[]): Promise<void> {
  try {
    await execa("systemctl", args);
  } catch (err) {
    throw new UserError(
      `systemctl ${args.join(" ")} failed: ${(err as { shortMessage?: string }).shortMessage ?? (err as Error).message}`,
      1,
      { cause: err },
    );
  }
}

/** uid and gid of a user from /etc/passwd, or null. */
function lookupUser(name: string, passwd = "/etc/passwd"): { uid: number; gid: number } | null {
  const row = readFileSync(passwd, "utf8")
    .split("\n")
    .map((l) => l.split(":"))
    .find((f) => f[0] === name);
  return row ? { uid: Number(row[2]), gid: Number(row[3]) } : null;
}

/** The unprivileged system user a probe runs as; created once. */
export async function ensureUser(name: string): Promise<{ uid: number; gid: number; created: boolean }> {
  const known = lookupUser(name);
  if (known) return { ...known, created: false };
  try {
    await execa("useradd", [
      "--system",
      "--user-group",
      "--no-create-home",
      "--home-dir",
      "/nonexistent",
      "--shell",
      "/usr/sbin/nologin",
      name,
    ]);
  } catch (err) {
    throw new UserError(
      `cannot create the system user ${name}: ${(err as { shortMessage?: string }).shortMessage ?? (err as Error).message}`,
      1,
      { cause: err },
    );
  }
  const made = lookupUser(name);
  if (!made) throw new UserError(`useradd ${name} reported success, but /etc/passwd has no ${name}`);
  return { ...made, created: true };
}

export function chown(path: string, owner: { uid: number; gid: number }): void {
  chownSync(path, owner.uid, owner.gid);
}
