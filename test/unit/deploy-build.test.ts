import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import { expect, it } from "vitest";

const root = resolve(import.meta.dirname, "../..");

it("builds for deployment (wrangler deploy --dry-run) with the Durable Object binding, and ships the agent its [build] just built", async () => {
  const out = mkdtempSync(join(tmpdir(), "wanwatch-deploy-"));
  try {
    const { stdout, stderr } = await promisify(execFile)(
      process.execPath,
      [
        join(root, "node_modules/wrangler/bin/wrangler.js"),
        "deploy",
        "--dry-run",
        "--outdir",
        out,
        "--config",
        join(root, "wrangler.toml"),
      ],
      {
        cwd: root,
        env: { ...process.env, WRANGLER_SEND_METRICS: "false", XDG_CONFIG_HOME: join(out, "config") },
        timeout: 60_000,
      },
    );
    expect(stdout + stderr).toContain("env.SITES (SiteCoordinator)");
    expect(stdout + stderr).toContain("--dry-run: exiting now.");
    expect(stdout + stderr).toContain("[custom build] Running: node agent/build.mjs");
    // The Worker's modules: the bundle [build] just wrote, and an install script naming its hash.
    const module = (suffix: string) => readFileSync(join(out, readdirSync(out).find((f) => f.endsWith(suffix))!));
    const bundle = module("-wanwatch.mjs.txt");
    expect(bundle).toEqual(readFileSync(join(root, "dist/wanwatch.mjs")));
    expect(module("-install.sh.txt").toString()).toContain(
      `BUNDLE_SHA256="${createHash("sha256").update(bundle).digest("hex")}"`,
    );
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
}, 90_000);
