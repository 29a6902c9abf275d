#!/usr/bin/env node
// `npm run typecheck`: every project's tsc, then a check that no tracked .ts file is outside all of
// them — a file no tsconfig includes is never typechecked, which is how test/ and bench/ drifted.
import { execFileSync, spawnSync } from "node:child_process";
import { resolve } from "node:path";

const ROOT = resolve(import.meta.dirname, "..");
const PROJECTS = ["shared", "worker", "agent", "."];
const tsc = resolve(ROOT, "node_modules/.bin/tsc");

let failed = false;
const covered = new Set();
for (const p of PROJECTS) {
  const run = spawnSync(tsc, ["-p", p], { cwd: ROOT, stdio: "inherit" });
  if (run.status !== 0) failed = true;
  const files = execFileSync(tsc, ["-p", p, "--listFilesOnly"], { cwd: ROOT, encoding: "utf8" });
  for (const f of files.split("\n")) if (f.startsWith(`${ROOT}/`)) covered.add(f.slice(ROOT.length + 1));
}
const tracked = execFileSync("git", ["ls-files", "*.ts"], { cwd: ROOT, encoding: "utf8" }).split("\n").filter(Boolean);
const outside = tracked.filter((f) => !f.endsWith(".d.ts") && !covered.has(f));
if (outside.length > 0) {
  console.error(`typecheck: ${outside.length} tracked .ts file(s) in no tsconfig: ${outside.join(", ")}`);
  failed = true;
}
if (failed) process.exit(1);
console.log(`typecheck: ${PROJECTS.length} projects, ${tracked.length} tracked .ts files, all covered`);
