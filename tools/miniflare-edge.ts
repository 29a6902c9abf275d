// The edge in workerd through Miniflare's API directly, for benchmarks: no wrangler proxy or
// request logging in the way (they cost 3–5× in throughput), the same Worker and Durable Objects.
import { build } from "esbuild";
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readFileSync, readdirSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { Log, LogLevel, Miniflare, convertV4MiniflareOptions } from "miniflare";
import { adminApi } from "./local-edge.ts";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");

/** The Worker bundled as `wrangler deploy` would: ES module, `cloudflare:` imports left to workerd, HTML and the agent build as text. */
export async function bundleWorker(): Promise<string> {
  // What wrangler's [build] does first: the agent bundle and install script the Worker serves.
  execFileSync(process.execPath, [resolve(root, "agent/build.mjs")], { stdio: "pipe" });
  const out = await build({
    entryPoints: [resolve(root, "worker/src/index.ts")],
    bundle: true,
    format: "esm",
    platform: "neutral",
    target: "es2023",
    conditions: ["workerd", "worker", "browser"],
    mainFields: ["module", "main"],
    external: ["cloudflare:*"],
    loader: { ".html": "text", ".txt": "text" },
    write: false,
  });
  return out.outputFiles[0]!.text;
}

export interface MiniflareEdge {
  url: string;
  adminToken: string;
  api: ReturnType<typeof adminApi>;
  /** The workerd process running the edge, for CPU and memory readings. */
  workerdPid: number;
  stop(): Promise<void>;
}

export async function startMiniflareEdge(o: { vars?: Record<string, string> } = {}): Promise<MiniflareEdge> {
  const adminToken = randomBytes(24).toString("base64url");
  const compatibilityDate = /compatibility_date\s*=\s*"([^"]+)"/.exec(
    readFileSync(resolve(root, "wrangler.toml"), "utf8"),
  )![1]!;
  const before = new Set(workerdChildren());
  const mf = new Miniflare(
    convertV4MiniflareOptions({
      host: "127.0.0.1",
      port: 0,
      cf: false,
      // workerd's own errors (an exhausted limit, a crash) are what a benchmark must not hide.
      log: new Log(LogLevel.WARN),
      workers: [
        {
          name: "wanwatch",
          modules: true,
          script: await bundleWorker(),
          compatibilityDate,
          bindings: { ADMIN_TOKEN: adminToken, PUBLIC_STATUS: "false", ...o.vars },
          durableObjects: {
            SITES: { className: "SiteCoordinator", useSQLite: true },
            SITE_INDEX: { className: "SiteIndex", useSQLite: true },
          },
        },
      ],
    }),
  );
  const url = (await mf.ready).origin;
  const workerdPid = workerdChildren().find((p) => !before.has(p));
  if (workerdPid === undefined) {
    await mf.dispose();
    throw new Error("could not find the workerd process Miniflare started");
  }
  return { url, adminToken, api: adminApi(url, adminToken), workerdPid, stop: () => mf.dispose() };
}

/** workerd processes that are children of this one (Miniflare spawns it directly). */
function workerdChildren(): number[] {
  return readdirSync("/proc").flatMap((d) => {
    if (!/^\d+$/.test(d)) return [];
    try {
      const stat = readFileSync(`/proc/${d}/stat`, "utf8");
      const [, comm, rest] = /^\d+ \((.*)\) (.*)$/s.exec(stat)!;
      return comm === "workerd" && Number(rest!.split(" ")[1]) === process.pid ? [Number(d)] : [];
    } catch {
      return [];
    }
  });
}
