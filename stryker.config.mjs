// Mutation testing of the pure cores (`npm run mutate`). Kept out of `npm test`: it reruns the
// fast unit tests once per mutant, one at a time, so it does not starve a shared 2-core machine.
/** @type {import("@stryker-mutator/api/core").PartialStrykerOptions} */
export default {
  testRunner: "vitest",
  vitest: { configFile: "vitest.mutate.config.ts" },
  mutate: [
    "worker/src/engine/decision.ts",
    "worker/src/engine/tunnels.ts",
    "worker/src/engine/witness.ts",
    "worker/src/site/transition.ts",
    "agent/src/directive/reconciler.ts",
    "agent/src/directive/replicas.ts",
    "shared/src/signing.ts",
  ],
  // The sandbox is a copy of the project: not the lab's and the tests' state (a systemd root
  // filesystem with dangling links lives there), nor the built bundle.
  ignorePatterns: ["/.state", "/dist"],
  // Stryker rewrites tsconfig.json's paths in its sandbox with TypeScript's JS API, which
  // TypeScript 7 (native) no longer has; our tsconfigs need no rewrite (no extends, no references).
  tsconfigFile: "",
  coverageAnalysis: "perTest",
  concurrency: 1,
  reporters: ["clear-text", "progress", "html"],
  htmlReporter: { fileName: ".state/mutation/index.html" },
  tempDirName: ".state/stryker-tmp",
  thresholds: { high: 90, low: 80, break: null },
};
