// Network namespaces for tests: created with a unique prefix, every one of them (and every process
// inside) removed by `destroy()`, which tests call from afterAll/afterEach so a failing test still
// cleans up. Only addresses inside these namespaces are ever used.
import { execFile, spawn, type ChildProcess, type SpawnOptions } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { promisify } from "node:util";

const execFileP = promisify(execFile);

/** Why the lab cannot run here, or null when it can (root on Linux with iproute2 and nftables). */
export function labUnavailable(): string | null {
  if (process.platform !== "linux") return "the lab needs Linux network namespaces";
  if (process.getuid?.() !== 0) return "the lab needs root (network namespaces); CI runs as root";
  for (const tool of ["ip", "nft"])
    if (!onPath(tool)) return `the lab needs \`${tool}\` (apt-get install iproute2 nftables)`;
  return null;
}

export function onPath(tool: string): boolean {
  return whereIs(tool) !== null;
}

/** Where a tool is on this process's PATH, or null. */
export function whereIs(tool: string): string | null {
  const dir = (process.env.PATH ?? "").split(":").find((d) => d && existsSync(`${d}/${tool}`));
  return dir ? `${dir}/${tool}` : null;
}

export async function sh(
  argv: string[],
  o: { input?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {},
): Promise<string> {
  const [file, ...args] = argv;
  try {
    if (o.input !== undefined) {
      return await new Promise<string>((ok, fail) => {
        const c = spawn(file!, args, { stdio: ["pipe", "pipe", "pipe"], env: o.env ?? process.env });
        let out = "";
        let err = "";
        c.stdout.on("data", (d) => (out += d));
        c.stderr.on("data", (d) => (err += d));
        c.on("error", fail);
        c.on("close", (code) => (code === 0 ? ok(out) : fail(new Error(`exit ${code}: ${err.trim()}`))));
        c.stdin.end(o.input);
      });
    }
    return (await execFileP(file!, args, { env: o.env ?? process.env, timeout: o.timeoutMs ?? 20_000 })).stdout;
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`\`${argv.join(" ")}\` failed: ${(e.stderr || e.message).trim()}`);
  }
}

/** Alive and not a zombie (this machine's PID 1 reaps orphans late). */
export function alive(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]?.[0] !== "Z";
  } catch {
    return false;
  }
}

export async function waitUntil(
  check: () => boolean | Promise<boolean>,
  what: string,
  ms = 15_000,
  everyMs = 50,
): Promise<void> {
  const until = Date.now() + ms;
  for (;;) {
    if (await check()) return;
    if (Date.now() > until) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

export class Netns {
  readonly name: string;
  constructor(name: string) {
    this.name = name;
  }
  /** Runs a command inside the namespace and returns its stdout. */
  exec(argv: string[], o: { input?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<string> {
    return sh(["ip", "netns", "exec", this.name, ...argv], o);
  }
  ip(...args: string[]): Promise<string> {
    return sh(["ip", "-n", this.name, ...args]);
  }
  /** Starts a long-running process inside the namespace (`ip netns exec` execs it: same pid). */
  spawn(argv: string[], o: SpawnOptions = {}): ChildProcess {
    return spawn("ip", ["netns", "exec", this.name, ...argv], { stdio: ["ignore", "pipe", "pipe"], ...o });
  }
  /** Processes inside the namespace. */
  async pids(): Promise<number[]> {
    const out = await sh(["ip", "netns", "pids", this.name]).catch(() => "");
    return out.split("\n").filter(Boolean).map(Number);
  }
}

/** A set of namespaces with a common unique prefix, destroyed together. */
export class NetnsSet {
  readonly prefix: string;
  private readonly made: Netns[] = [];
  private readonly cleanups: (() => Promise<void> | void)[] = [];

  constructor(tag: string) {
    // Unique per process and call, short enough for the derived names.
    this.prefix = `ww${tag}${process.pid % 1000}${Math.floor(Math.random() * 1296).toString(36)}`;
  }

  /** A new namespace; IPv4 only unless asked for IPv6 (router advertisements accepted). */
  async add(role: string, o: { ipv6?: boolean } = {}): Promise<Netns> {
    const ns = new Netns(`${this.prefix}-${role}`);
    await sh(["ip", "netns", "add", ns.name]);
    this.made.push(ns);
    await ns.ip("link", "set", "lo", "up");
    const off = o.ipv6 ? 0 : 1;
    await ns.exec([
      "sysctl",
      "-qw",
      `net.ipv6.conf.all.disable_ipv6=${off}`,
      `net.ipv6.conf.default.disable_ipv6=${off}`,
    ]);
    return ns;
  }

  /** Runs before the namespaces go (stop daemons gracefully, unmount, remove folders). */
  onDestroy(fn: () => Promise<void> | void): void {
    this.cleanups.push(fn);
  }

  async destroy(): Promise<void> {
    for (const fn of this.cleanups.splice(0).reverse()) {
      try {
        await fn();
      } catch {
        // keep going: the namespaces must go whatever failed before
      }
    }
    for (const ns of this.made.splice(0).reverse()) {
      for (const sig of ["SIGTERM", "SIGKILL"] as const) {
        const pids = await ns.pids();
        for (const pid of pids) {
          try {
            process.kill(pid, sig);
          } catch {
            // already gone
          }
        }
        if (pids.length)
          await waitUntil(
            async () => (await ns.pids()).every((p) => !alive(p)),
            `processes in ${ns.name} to exit`,
            3_000,
          ).catch(() => undefined);
      }
      await sh(["ip", "netns", "del", ns.name]).catch(() => undefined);
    }
  }
}

/**
 * Writes a command line to a child's stdin (none: just listens) and waits for a line on its stdout
 * that reads `answer`; fails if it exits first.
 */
export function answered(child: ChildProcess, command: string | null, answer: string): Promise<void> {
  return new Promise<void>((ready, fail) => {
    let heard = "";
    const onData = (chunk: Buffer) => {
      heard += chunk.toString();
      if (!heard.split("\n").includes(answer)) return;
      settle();
      ready();
    };
    const onExit = (code: number | null) => (
      settle(), fail(new Error(`${child.spawnargs.join(" ")} exited (${code}) before it answered "${answer}"`))
    );
    const onError = (err: Error) => (settle(), fail(err));
    const settle = () => (child.stdout!.off("data", onData), child.off("exit", onExit), child.off("error", onError));
    child.stdout!.on("data", onData);
    child.once("error", onError);
    child.once("exit", onExit);
    if (command !== null) child.stdin!.write(`${command}\n`);
  });
}
