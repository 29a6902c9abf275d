// One file, no node_modules needed at run time: dist/wanwatch.mjs, for Node ≥ 18.19 (Debian 12).
import { build } from "esbuild";
import { chmodSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url)).replace(/\/$/, "");
const { version } = JSON.parse(readFileSync(`${root}/package.json`, "utf8"));
const outfile = `${root}/dist/wanwatch.mjs`;

await build({
  entryPoints: [`${root}/agent/src/main.ts`],
  outfile,
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
chmodSync(outfile, 0o755);
console.log(`built ${outfile} (wanwatch ${version})`);
