// Types for `cloudflare:workers` (env, exports) in this project, as `wrangler types` would declare them.
type WanwatchEnv = import("./env.ts").Env;
declare namespace Cloudflare {
  interface Env extends WanwatchEnv {}
  interface GlobalProps {
    mainModule: typeof import("./index.ts");
    durableNamespaces: "SiteCoordinator" | "SiteIndex";
  }
}
