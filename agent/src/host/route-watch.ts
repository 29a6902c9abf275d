// Tells the agent as soon as the kernel's routes change (`ip monitor route`: netlink events, no
// polling), so a DHCP renewal or a hand edit that moves the default route is repaired in well
// under a second. The daemon's slower periodic read stays as the backstop.
import { spawn, type ChildProcess } from "node:child_process";
import type { Logger } from "../lib/log.ts";

/** A burst of route events (a renewal touches several routes) becomes one call. */
const SETTLE_MS = 50;
const RESTART_MS = 5_000;

export function watchRoutes(onChange: () => void, log: Logger): () => void {
  let child: ChildProcess | null = null;
  let settle: NodeJS.Timeout | null = null;
  let restart: NodeJS.Timeout | null = null;
  let stopped = false;
  const start = () => {
    child = spawn("ip", ["monitor", "route"], { stdio: ["ignore", "pipe", "ignore"] });
    child.stdout!.on("data", () => {
      settle ??= setTimeout(() => {
        settle = null;
        onChange();
      }, SETTLE_MS);
    });
    child.on("error", (err) =>
      log.warn("cannot watch the routes; reading them periodically instead", { error: err.message }),
    );
    child.on("exit", () => {
      if (stopped) return;
      restart = setTimeout(start, RESTART_MS);
      restart.unref();
    });
  };
  start();
  return () => {
    stopped = true;
    for (const t of [settle, restart]) if (t) clearTimeout(t);
    child?.kill();
  };
}
