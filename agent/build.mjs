// One file, no node_modules needed at run time: dist/wanwatch.mjs, for Node ≥ 18.19 (Debian 12).
// Also what the edge serves for one-line installs (wrangler's [build] runs this before it bundles
// the Worker): dist/edge/wanwatch.mjs.txt, the same bytes, and dist/edge/install.sh.txt, the
// install script with the bundle's SHA-256 in it (`.txt`: wrangler's default text-module rule).
import { build } from "esbuild";
import { createHash } from "node:crypto";
import { chmodSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url)).replace(/\/$/, "");
const { version } = JSON.parse(readFileSync(`${root}/package.json`, "utf8"));
const outfile = `${root}/dist/wanwatch.mjs`;

const out = await build({
  entryPoints: [`${root}/agent/src/main.ts`],
  outfile,
  write: false,
  bundle: true,
  platform: "node",
  target: "node18",
  format: "esm",
  // Bundled CommonJS dependencies (ws) call require(): give the ESM bundle one.
  banner: {
    js: `#!/usr/bin/env node\nimport { createRequire as __wanwatchRequire } from "node:module";\nconst require = __wanwatchRequire(import.meta.url);`,
  },
  define: { __WANWATCH_VERSION__: JSON.stringify(version) },
  // ws can use these native add-ons when installed; without them it falls back to plain JS.
  external: ["bufferutil", "utf-8-validate"],
  legalComments: "none",
  logLevel: "warning",
});
const bundle = out.outputFiles[0].contents;

/** Written beside and renamed over: tests and agents running the old file keep reading whole bytes. */
function place(path, data, mode = 0o644) {
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, data, { mode });
  chmodSync(tmp, mode);
  renameSync(tmp, path);
}

mkdirSync(`${root}/dist/edge`, { recursive: true });
place(outfile, bundle, 0o755);
place(`${root}/dist/edge/wanwatch.mjs.txt`, bundle);
const sha256 = createHash("sha256").update(bundle).digest("hex");
const script = readFileSync(`${root}/agent/install.sh`, "utf8")
  .replace("@SHA256@", sha256)
  .replace("@VERSION@", version);
place(`${root}/dist/edge/install.sh.txt`, script);
console.log(`built ${outfile} (wanwatch ${version}, sha256 ${sha256.slice(0, 12)}…) and the edge's copy`);
