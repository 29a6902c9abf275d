#!/usr/bin/env node
// Runs a command with the offline settings every local run needs (see the README): no metrics,
// no request.cf fetch, and wrangler's config and caches inside the repo's ignored .state folder.
import { spawn } from "node:child_process";
import { mkdirSync } from "node:fs";
import { resolve } from "node:path";

const state = resolve(import.meta.dirname, "..", ".state");
mkdirSync(state, { recursive: true });
const env = {
  ...process.env,
  WRANGLER_SEND_METRICS: "false",
  CLOUDFLARE_CF_FETCH_ENABLED: "false",
  XDG_CONFIG_HOME: process.env.XDG_CONFIG_HOME ?? resolve(state, "config"),
  XDG_DATA_HOME: process.env.XDG_DATA_HOME ?? resolve(state, "data"),
};
const [cmd, ...args] = process.argv.slice(2);
if (!cmd) {
  console.error("usage: with-offline-env.mjs COMMAND [ARGS…]");
  process.exit(2);
}
const child = spawn(cmd, args, { stdio: "inherit", env });
for (const sig of ["SIGINT", "SIGTERM"]) process.on(sig, () => child.kill(sig));
child.on("exit", (code, signal) => process.exit(code ?? (signal ? 128 : 1)));
