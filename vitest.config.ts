import { cloudflareTest } from "@cloudflare/vitest-plugin";
import { defineConfig } from "vitest/config";

// Four kinds of test: the edge inside real workerd; pure logic and the agent on Node; the local
// edge end to end with a browser or a receiver; and the network lab (real namespaces, root only).
export default defineConfig({
  test: {
    // The summary of what was skipped, and why, comes after vitest's own.
    reporters: ["default", "./test/setup/skip-summary.ts"],
    projects: [
      {
        plugins: [
          cloudflareTest({
            wrangler: { configPath: "./wrangler.toml" },
            miniflare: {
              bindings: { ADMIN_TOKEN: "test-admin-token-0123456789", VIEWER_TOKEN: "test-viewer-token-0123456789" },
            },
          }),
        ],
        // The plugin does not run wrangler's [build]: the Worker imports the agent bundle it makes.
        test: { name: "edge", include: ["test/edge/**/*.test.ts"], globalSetup: ["./test/setup/build-agent.ts"] },
      },
      { test: { name: "unit", environment: "node", include: ["test/unit/**/*.test.ts"] } },
      {
        // The real local edge (wrangler dev) with a browser or a real receiver in front of it.
        test: {
          name: "e2e",
          environment: "node",
          include: ["test/e2e/**/*.test.ts"],
          testTimeout: 90_000,
          hookTimeout: 90_000,
          fileParallelism: false,
        },
      },
      {
        test: {
          // The agent's tests and the lab's share one queue: both start real agents (the lab in
          // namespaces), and timing in the lab holds only when nothing else of theirs runs beside it.
          name: "agent",
          environment: "node",
          include: ["test/agent/**/*.test.ts", "test/lab/**/*.test.ts"],
          testTimeout: 60_000,
          hookTimeout: 60_000,
          fileParallelism: false,
        },
      },
    ],
  },
});
