// The one-line install, served by the edge itself so `wrangler deploy` ships it: the install
// script (told this edge's address) and the agent bundle it downloads and checks. Both are built
// by agent/build.mjs, which wrangler's [build] runs before it bundles the Worker.
import { Hono } from "hono";
import bundle from "../../../dist/edge/wanwatch.mjs.txt";
import script from "../../../dist/edge/install.sh.txt";
import type { Env } from "../env.ts";

export const install = new Hono<{ Bindings: Env }>();

install.get("/install.sh", (c) =>
  c.text(script.replace("@EDGE@", new URL(c.req.url).origin), 200, {
    "content-type": "text/x-shellscript; charset=utf-8",
    "cache-control": "no-store",
  }),
);

// The script holds the bundle's hash: both must come from one deployment, so neither is cached long.
install.get("/agent/wanwatch.mjs", (c) =>
  c.body(bundle, 200, { "content-type": "text/javascript; charset=utf-8", "cache-control": "no-store" }),
);
