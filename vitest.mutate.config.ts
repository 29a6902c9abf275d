import { defineConfig } from "vitest/config";

// What Stryker runs against each mutant: the fast Node tests of the pure cores only (no workerd,
// no lab, no wrangler build), so a run stays within minutes.
export default defineConfig({
  test: {
    environment: "node",
    include: ["test/unit/**/*.test.ts", "test/agent/reconciler.test.ts", "test/agent/signing.test.ts"],
    exclude: ["test/unit/deploy-build.test.ts"],
  },
});
