// Entry point of the single-file bundle (dist/wanwatch.mjs).
import { main } from "./cli/main.ts";

const code = await main(process.argv.slice(2), {
  out: (s) => process.stdout.write(s + "\n"),
  err: (s) => process.stderr.write(s + "\n"),
  env: process.env,
});
// Let stdout drain before exiting (a pipe may be slow), but never linger on open handles.
process.exitCode = code;
setImmediate(() => process.exit(code));
