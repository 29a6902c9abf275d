// A real systemd as PID 1 for tests: a Debian bookworm rootfs (debootstrap, built once and cached
// in the repo's ignored .state folder), booted with systemd-nspawn inside a network namespace.
// The host has no systemd of its own, hence --register=no --keep-unit and a cgroup dir of ours.
import { spawn, type ChildProcess } from "node:child_process";
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  rmdirSync,
  writeFileSync,
} from "node:fs";
import { join, resolve } from "node:path";
import { sh, waitUntil, whereIs } from "./netns.ts";

const ROOT = resolve(import.meta.dirname, "../..");
export const ROOTFS = join(ROOT, ".state/systemd-box/bookworm");

const PACKAGES = ["systemd-nspawn", "debootstrap"] as const;

/** Why a systemd box cannot run here, or null. Installs the two Debian packages when root with apt (WANWATCH_NO_APT=1 opts out). */
export async function systemdBoxUnavailable(): Promise<string | null> {
  if (process.platform !== "linux") return "systemd-nspawn needs Linux";
  if (process.getuid?.() !== 0) return "systemd-nspawn and debootstrap need root";
  if (PACKAGES.every((t) => whereIs(t) !== null || existsSync(`/usr/sbin/${t}`))) return null;
  if (process.env.WANWATCH_NO_APT === "1")
    return "systemd-nspawn or debootstrap is missing (apt-get install systemd-container debootstrap; WANWATCH_NO_APT=1 is set)";
  if (!whereIs("apt-get")) return "systemd-nspawn or debootstrap is missing, and there is no apt-get to install them";
  console.log(
    "installing systemd-container and debootstrap (apt-get) for the systemd test; WANWATCH_NO_APT=1 skips this",
  );
  try {
    await sh(["apt-get", "install", "-y", "--no-install-recommends", "systemd-container", "debootstrap"], {
      timeoutMs: 300_000,
    });
  } catch (err) {
    return `cannot install systemd-container and debootstrap: ${(err as Error).message.split("\n")[0]}`;
  }
  return null;
}

/** The Debian mirror this host's apt uses (deb822 or one-line sources). */
function debianMirror(): string | null {
  const files = [
    "/etc/apt/sources.list",
    ...(existsSync("/etc/apt/sources.list.d")
      ? readdirSync("/etc/apt/sources.list.d").map((f) => `/etc/apt/sources.list.d/${f}`)
      : []),
  ];
  for (const f of files.filter((f) => /\.(list|sources)$/.test(f) && existsSync(f))) {
    const text = readFileSync(f, "utf8");
    const deb822 = /^URIs:\s*(\S+)\s*\nSuites:[^\n]*\bbookworm\b/m.exec(text);
    const line = /^deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+bookworm\s/m.exec(text);
    const url = deb822?.[1] ?? line?.[1];
    if (url && /\/debian\/?$/.test(url)) return url;
  }
  return null;
}

/** The cached rootfs, built on first use (≈ 40 s). Returns null and why when it cannot be built. */
export async function bookwormRootfs(): Promise<{ rootfs: string } | { skip: string }> {
  if (existsSync(join(ROOTFS, "usr/lib/systemd/systemd"))) return { rootfs: ROOTFS };
  const mirror = debianMirror() ?? "http://deb.debian.org/debian";
  const tmp = `${ROOTFS}.partial-${process.pid}`;
  mkdirSync(resolve(ROOTFS, ".."), { recursive: true });
  console.log(`building a Debian bookworm rootfs for the systemd test (once; cached in .state/systemd-box)`);
  try {
    await sh(
      ["debootstrap", "--variant=minbase", "--include=systemd,dbus,libnss-systemd,iproute2", "bookworm", tmp, mirror],
      { timeoutMs: 600_000 },
    );
  } catch (err) {
    rmSync(tmp, { recursive: true, force: true });
    return {
      skip: `debootstrap could not build a rootfs from ${mirror}: ${(err as Error).message.split("\n").slice(-1)[0]}`,
    };
  }
  renameSync(tmp, ROOTFS); // only a complete rootfs is ever cached
  return { rootfs: ROOTFS };
}

export interface SystemdBox {
  /** The container's systemd (PID 1 inside). */
  init: number;
  /** Runs a command inside (all namespaces of the container), as root, with a clean environment. */
  exec(argv: string[], o?: { input?: string; timeoutMs?: number }): Promise<string>;
  /** Like exec, but resolves with the exit code and output instead of throwing. */
  run(argv: string[]): Promise<{ code: number; stdout: string }>;
  stop(): Promise<void>;
}

const CGROUP_HIERARCHIES = ["systemd", "unified"];

/** Boots the rootfs (nothing written to it: --volatile=overlay) in network namespace `netns`. */
export async function bootSystemdBox(o: {
  name: string;
  rootfs: string;
  netns: string;
  bindsRo: string[];
}): Promise<SystemdBox> {
  const cgroups = CGROUP_HIERARCHIES.map((h) => `/sys/fs/cgroup/${h}/${o.name}`).filter((d) =>
    existsSync(resolve(d, "..")),
  );
  for (const d of cgroups) mkdirSync(d, { recursive: true });
  const args = [
    "-D",
    o.rootfs,
    "--machine",
    o.name,
    "--register=no",
    "--keep-unit",
    "--volatile=overlay",
    `--network-namespace-path=/run/netns/${o.netns}`,
    // A host's root may change routes; nspawn keeps CAP_NET_ADMIN only with a private network of its own.
    "--capability=CAP_NET_ADMIN",
    ...o.bindsRo.map((b) => `--bind-ro=${b}`),
    "-b",
  ];
  // Into our cgroup dir first: without a host systemd, nspawn builds the container's tree under it.
  const script = `for d in ${cgroups.join(" ")}; do echo $$ > $d/cgroup.procs; done; exec systemd-nspawn "$@"`;
  const log: string[] = [];
  const nspawn: ChildProcess = spawn("bash", ["-c", script, "nspawn", ...args], {
    stdio: ["ignore", "pipe", "pipe"],
    detached: true,
  });
  nspawn.stdout!.on("data", (d) => log.push(String(d)));
  nspawn.stderr!.on("data", (d) => log.push(String(d)));
  const exited = new Promise<void>((r) => nspawn.once("exit", () => r()));

  const cleanup = async () => {
    if (nspawn.exitCode === null && nspawn.signalCode === null) {
      nspawn.kill("SIGTERM");
      const killed = await Promise.race([
        exited.then(() => true),
        new Promise<boolean>((r) => setTimeout(() => r(false), 10_000)),
      ]);
      if (!killed) {
        nspawn.kill("SIGKILL");
        await exited;
      }
    }
    // Depth-first: nspawn leaves payload/ and supervisor/ (and the container's own tree) behind.
    for (const d of cgroups) rmdirTree(d);
    rmSync(`/run/systemd/nspawn/propagate/${o.name}`, { recursive: true, force: true });
    rmSync("/run/systemd/nspawn/locks", { recursive: true, force: true });
    // The folders nspawn made for itself go once no other box uses them.
    for (const d of ["/run/systemd/nspawn/propagate", "/run/systemd/nspawn"])
      try {
        rmdirSync(d);
      } catch {
        // Not empty (another box runs) or already gone.
      }
  };

  let init = 0;
  try {
    await waitUntil(
      () => {
        const kids = readFileSync(`/proc/${nspawn.pid}/task/${nspawn.pid}/children`, "utf8")
          .trim()
          .split(/\s+/)
          .filter(Boolean)
          .map(Number);
        init = kids.find((k) => readFileSync(`/proc/${k}/comm`, "utf8").trim() === "systemd") ?? 0;
        return init > 0;
      },
      `the container's systemd (nspawn said: ${log.join("").slice(-500)})`,
      30_000,
    );
    const nsenter = [
      "env",
      "-i",
      "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
      "nsenter",
      "-t",
      String(init),
      "-a",
    ];
    const exec = (argv: string[], eo: { input?: string; timeoutMs?: number } = {}) => sh([...nsenter, ...argv], eo);
    const run = (argv: string[]) =>
      new Promise<{ code: number; stdout: string }>((ok) => {
        const c = spawn(nsenter[0]!, [...nsenter.slice(1), ...argv], { stdio: ["ignore", "pipe", "pipe"] });
        let stdout = "";
        c.stdout.on("data", (d) => (stdout += d));
        c.on("close", (code) => ok({ code: code ?? 1, stdout }));
      });
    // Early calls fail with "Failed to connect to bus" until systemd is up.
    await waitUntil(
      async () => ["running", "degraded"].includes((await run(["systemctl", "is-system-running"])).stdout.trim()),
      "systemd inside the container running",
      60_000,
      100,
    );
    return { init, exec, run, stop: cleanup };
  } catch (err) {
    await cleanup();
    throw err;
  }
}

function rmdirTree(dir: string): void {
  if (!existsSync(dir)) return;
  for (const e of readdirSync(dir, { withFileTypes: true })) if (e.isDirectory()) rmdirTree(join(dir, e.name));
  try {
    rmdirSync(dir);
  } catch {
    // A process still inside: the kernel refuses, and a leftover is better than a crash in cleanup.
  }
}

/** Writes a file into the running container's view (through its root, which the overlay makes writable). */
export function writeInside(init: number, path: string, text: string): void {
  writeFileSync(`/proc/${init}/root${path}`, text);
}
