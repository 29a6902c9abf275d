// Runs the real edge (the Worker and its Durable Objects in workerd, via `wrangler dev --local`)
// as a child process, for the demo, the lab and end-to-end tests. Offline, state in one folder.
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");

export interface LocalEdgeOptions {
  /** Address the edge is reached at (default 127.0.0.1). */
  host?: string;
  /**
   * Address to listen on, when not `host`: "::" takes IPv4 and IPv6 clients alike (the Worker reads
   * an IPv4 client's `::ffff:` address as IPv4).
   */
  listen?: string;
  /** Port (default: a free one). */
  port?: number;
  /** Folder for SQLite state and secrets; survives restarts of the edge. */
  stateDir: string;
  /** Run inside this network namespace (`ip netns exec`), for the lab. */
  netns?: string;
  publicStatus?: boolean;
  /** More Worker vars (not secrets), e.g. NOTIFY_RETRY_BASE_MS. */
  vars?: Record<string, string>;
  /** Where wrangler's output goes (default: a log file in stateDir). */
  log?: (line: string) => void;
}

export interface LocalEdge {
  url: string;
  adminToken: string;
  viewerToken: string;
  /** An admin API call; throws with the edge's answer unless it is 2xx. */
  api(method: string, path: string, body?: unknown): Promise<any>;
  /** Stops the process; state stays in stateDir. */
  stop(): Promise<void>;
  /** Stops and starts it again on the same address and state. */
  restart(): Promise<void>;
  /** Kills it (SIGKILL, no chance to finish anything), as a crash or a power cut would; restart() brings it back. */
  crash(): Promise<void>;
}

export async function freePort(host = "127.0.0.1"): Promise<number> {
  return new Promise((ok, bad) => {
    const srv = createServer();
    srv.once("error", bad);
    srv.listen(0, host, () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => ok(port));
    });
  });
}

export async function startLocalEdge(o: LocalEdgeOptions): Promise<LocalEdge> {
  const host = o.host ?? "127.0.0.1";
  const port = o.port ?? (await freePort(host));
  const url = `http://${host}:${port}`;
  mkdirSync(o.stateDir, { recursive: true });
  const adminToken = randomBytes(24).toString("base64url");
  const viewerToken = randomBytes(24).toString("base64url");
  // Secrets go to wrangler through a 0600 file, never argv.
  const envFile = join(o.stateDir, "edge.env");
  writeFileSync(envFile, `ADMIN_TOKEN=${adminToken}\nVIEWER_TOKEN=${viewerToken}\n`, { mode: 0o600 });
  const args = [
    join(root, "node_modules/wrangler/bin/wrangler.js"),
    "dev",
    "--local",
    "--config",
    join(root, "wrangler.toml"),
    "--ip",
    o.listen ?? host,
    "--port",
    String(port),
    "--persist-to",
    join(o.stateDir, "persist"),
    "--env-file",
    envFile,
    "--show-interactive-dev-session=false",
    "--log-level",
    "warn",
    ...(o.publicStatus ? ["--var", "PUBLIC_STATUS:true"] : []),
    ...Object.entries(o.vars ?? {}).flatMap(([k, v]) => ["--var", `${k}:${v}`]),
  ];
  const env = {
    ...process.env,
    WRANGLER_SEND_METRICS: "false",
    CLOUDFLARE_CF_FETCH_ENABLED: "false",
    XDG_CONFIG_HOME: join(root, ".state/config"),
    XDG_DATA_HOME: join(root, ".state/data"),
  };
  let child: ChildProcess | null = null;
  // Inside a namespace the edge is reachable only from there: ask from inside.
  const healthy = async () => {
    if (!o.netns)
      return fetch(`${url}/healthz`, { signal: AbortSignal.timeout(1_000) }).then(
        (r) => r.ok,
        () => false,
      );
    const check = `fetch(${JSON.stringify(`${url}/healthz`)},{signal:AbortSignal.timeout(1000)}).then(r=>process.exit(r.ok?0:1),()=>process.exit(1))`;
    return new Promise<boolean>((ok) =>
      execFile("ip", ["netns", "exec", o.netns!, process.execPath, "-e", check], (err) => ok(!err)),
    );
  };

  const start = async () => {
    const [cmd, argv] = o.netns
      ? ["ip", ["netns", "exec", o.netns, process.execPath, ...args]]
      : [process.execPath, args];
    const proc = spawn(cmd, argv, { env, cwd: root, detached: true, stdio: ["ignore", "pipe", "pipe"] });
    child = proc;
    const lines = (b: Buffer) => {
      for (const l of b.toString().split("\n").filter(Boolean)) o.log?.(l);
    };
    proc.stdout!.on("data", lines);
    proc.stderr!.on("data", lines);
    let exited = false;
    proc.once("exit", () => (exited = true));
    const deadline = Date.now() + 60_000;
    while (Date.now() < deadline) {
      if (exited) throw new Error(`the local edge exited during start-up (see its log)`);
      if (await healthy()) return;
      await new Promise((r) => setTimeout(r, 150));
    }
    throw new Error(`the local edge did not answer on ${url} within 60 s`);
  };

  const stop = async (signals: NodeJS.Signals[] = ["SIGTERM", "SIGKILL"]) => {
    const proc = child;
    child = null;
    if (!proc || proc.exitCode !== null || proc.pid === undefined) return;
    const gone = new Promise<void>((r) => proc.once("exit", () => r()));
    // wrangler runs workerd as a child: stop the whole process group.
    for (const [sig, wait] of signals.map((s) => [s, 5_000] as const)) {
      try {
        process.kill(-proc.pid, sig);
      } catch {
        return;
      }
      if (await Promise.race([gone.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), wait))]))
        return;
    }
  };

  try {
    await start();
  } catch (err) {
    await stop();
    throw err;
  }
  return {
    url,
    adminToken,
    viewerToken,
    api: adminApi(url, adminToken),
    stop: () => stop(),
    restart: async () => (await stop(), await start()),
    crash: () => stop(["SIGKILL"]),
  };
}

/** Admin API calls against an edge; each throws with the edge's answer unless it is 2xx. */
export function adminApi(url: string, adminToken: string) {
  return async (method: string, path: string, body?: unknown): Promise<any> => {
    const res = await fetch(`${url}${path}`, {
      method,
      headers: { authorization: `Bearer ${adminToken}`, "content-type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const json = await res.json();
    if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${JSON.stringify(json)}`);
    return json;
  };
}
