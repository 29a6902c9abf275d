import { cloudflareTest } from "@cloudflare/vitest-plugin";
import { defineConfig } from "vitest/config";

// Three kinds of test: the edge inside real workerd, pure logic and the agent on Node,
// and the network lab (real namespaces, root only) on Node.
export default defineConfig({
  test: {
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
        test: { name: "edge", include: ["test/edge/**/*.test.ts"] },
      },
      { test: { name: "unit", environment: "node", include: ["test/unit/**/*.test.ts"] } },
      {
        test: { name: "browser", environment: "node", include: ["test/browser/**/*.test.ts"], testTimeout: 60_000, hookTimeout: 90_000 },
      },
      {
        test: {
          name: "agent",
          environment: "node",
          include: ["test/agent/**/*.test.ts"],
          testTimeout: 60_000,
          hookTimeout: 60_000,
          fileParallelism: false,
        },
      },
    ],
  },
});
