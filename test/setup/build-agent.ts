// Builds the agent bundle and install script the Worker serves, as wrangler's [build] would.
import { execFileSync } from "node:child_process";
import { resolve } from "node:path";

export default function setup(): void {
  execFileSync(process.execPath, [resolve(import.meta.dirname, "../../agent/build.mjs")], { stdio: "pipe" });
}
