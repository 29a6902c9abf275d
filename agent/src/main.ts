// Entry point of the single-file bundle (dist/wanwatch.mjs). The Node version is checked before
// anything else runs: the CLI is imported dynamically, so the bundler defers its modules' code.
import { nodeVersionProblem } from "./runtime/node-version.ts";

const tooOld = nodeVersionProblem(process.versions.node);
if (tooOld) {
  process.stderr.write(`${tooOld}\n`);
  process.exit(2);
}
await import("./runtime/webcrypto.ts");
const { main } = await import("./cli/main.ts");

const code = await main(process.argv.slice(2), {
  out: (s) => process.stdout.write(`${s}\n`),
  err: (s) => process.stderr.write(`${s}\n`),
  env: process.env,
});
// Let stdout drain before exiting (a pipe may be slow), but never linger on open handles.
process.exitCode = code;
setImmediate(() => process.exit(code));
