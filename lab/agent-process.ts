// The agent as a real process: the bundle built once, a CLI run to completion, a daemon whose JSON log is
// collected. Used by the lab, the tests, the demo and the benchmarks.
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { join, resolve } from "node:path";

export const ROOT = resolve(import.meta.dirname, "..");
export const BUNDLE = join(ROOT, "dist/wanwatch.mjs");
/** Node 22 (what runs vitest), the machine's own Node 20 and Node 18 (Debian 12's apt, from the node18 devDependency): the bundle must run on each. */
export const NODE22 = process.execPath;
export const NODE20 = "/usr/bin/node";
export const NODE18 = join(ROOT, "node_modules/node18/bin/node");

let built = false;
export function buildBundle(): void {
  if (built) return;
  execFileSync(NODE22, [join(ROOT, "agent/build.mjs")], { cwd: ROOT, stdio: "pipe" });
  built = true;
}

export interface Ran {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the bundle to completion; with `netns`, inside that network namespace. */
export function wanwatch(
  args: string[],
  opts: {
    node?: string;
    nodeArgs?: string[];
    env?: Record<string, string | undefined>;
    timeoutMs?: number;
    netns?: string;
    input?: string;
  } = {},
): Promise<Ran> {
  return new Promise((resolve, reject) => {
    const argv = [opts.node ?? NODE22, ...(opts.nodeArgs ?? []), BUNDLE, ...args];
    const [cmd, ...rest] = opts.netns ? ["ip", "netns", "exec", opts.netns, ...argv] : argv;
    const child = spawn(cmd!, rest, {
      env: { ...process.env, ...opts.env },
      stdio: [opts.input === undefined ? "ignore" : "pipe", "pipe", "pipe"],
    });
    if (opts.input !== undefined) child.stdin!.end(opts.input);
    let stdout = "";
    let stderr = "";
    child.stdout?.on("data", (c) => (stdout += c));
    child.stderr?.on("data", (c) => (stderr += c));
    const t = setTimeout(() => child.kill("SIGKILL"), opts.timeoutMs ?? 20_000);
    child.on("error", reject);
    child.on("close", (code) => {
      clearTimeout(t);
      resolve({ code, stdout, stderr });
    });
  });
}

/** A running daemon whose JSON log lines are collected. */
export class Daemon {
  readonly lines: Record<string, unknown>[] = [];
  stderr = "";
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private waiters: (() => void)[] = [];
  readonly child: ChildProcess;
  constructor(child: ChildProcess) {
    this.child = child;
    let buf = "";
    child.stdout!.on("data", (c) => {
      buf += c;
      let i: number;
      while ((i = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        try {
          this.lines.push(JSON.parse(line));
        } catch {
          this.lines.push({ raw: line });
        }
        for (const w of this.waiters.splice(0)) w();
      }
    });
    child.stderr!.on("data", (c) => (this.stderr += c));
    this.exit = new Promise((r) => child.on("exit", (code, signal) => r({ code, signal })));
  }

  /** Starts the bundle; with `netns`, inside that network namespace (`ip netns exec` keeps the pid). */
  static start(args: string[], opts: { node?: string; env?: Record<string, string>; netns?: string } = {}): Daemon {
    const argv = [opts.node ?? NODE22, BUNDLE, ...args];
    const [cmd, ...rest] = opts.netns ? ["ip", "netns", "exec", opts.netns, ...argv] : argv;
    return new Daemon(spawn(cmd!, rest, { env: { ...process.env, ...opts.env }, stdio: ["ignore", "pipe", "pipe"] }));
  }

  /** Waits for a log line matching `pick`. */
  async waitFor(pick: (l: Record<string, any>) => boolean, what: string, ms = 15_000): Promise<Record<string, any>> {
    const deadline = Date.now() + ms;
    for (;;) {
      const hit = this.lines.find(pick);
      if (hit) return hit;
      if (Date.now() > deadline)
        throw new Error(
          `timed out waiting for ${what}; log:\n${this.lines.map((l) => JSON.stringify(l)).join("\n")}\nstderr: ${this.stderr}`,
        );
      await new Promise<void>((r) => {
        this.waiters.push(r);
        setTimeout(r, 100);
      });
    }
  }
}
