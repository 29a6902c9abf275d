// The registry this project installs from lacks some platform builds (workerd's macOS and
// Windows packages for the pinned release). `npm install` then drops them from the lockfile and
// `npm ci` refuses the lockfile as out of sync. This lists each missing platform package as an
// os/cpu-restricted optional entry, which `npm ci` skips on other platforms.
// Run after `npm install`: node scripts/lock-platforms.mjs
import { readFileSync, writeFileSync } from "node:fs";

const path = new URL("../package-lock.json", import.meta.url);
const lock = JSON.parse(readFileSync(path, "utf8"));
const platform = /-(darwin|linux|windows|win32)-(64|x64|arm64)$/;
const os = { darwin: "darwin", linux: "linux", windows: "win32", win32: "win32" };
const cpu = { 64: "x64", x64: "x64", arm64: "arm64" };

let added = 0;
for (const [at, pkg] of Object.entries(lock.packages)) {
  for (const [name, version] of Object.entries(pkg.optionalDependencies ?? {})) {
    const match = platform.exec(name);
    const key = `node_modules/${name}`;
    if (!match || lock.packages[key] || lock.packages[`${at}/${key}`]) continue;
    lock.packages[key] = {
      version,
      cpu: [cpu[match[2]]],
      ...(pkg.dev ? { dev: true } : {}),
      optional: true,
      os: [os[match[1]]],
    };
    added++;
  }
}
lock.packages = Object.fromEntries(
  Object.entries(lock.packages).sort(([a], [b]) => (a === "" ? -1 : b === "" ? 1 : a < b ? -1 : a > b ? 1 : 0)),
);
writeFileSync(path, `${JSON.stringify(lock, null, 2)}\n`);
console.log(`lock-platforms: ${added} platform entr${added === 1 ? "y" : "ies"} added`);
