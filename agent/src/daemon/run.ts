// `wanwatch agent run`: the process around the Agent. SIGTERM/SIGINT handled once; a hard-exit
// timer makes sure a stuck shutdown (a hung nmcli, a socket that will not close) still ends.
import { loadConfig } from "../config/load.ts";
import { describeError, UserError } from "../lib/errors.ts";
import { createLogger, type Logger } from "../lib/log.ts";
import type { AgentOptions } from "./agent.ts";
import { ProbeAgent } from "./probe-agent.ts";
import { ServerAgent } from "./server-agent.ts";
import type { HostPort } from "./host-port.ts";

const HARD_EXIT_MS = 10_000;

export async function runDaemon(configPath: string, host: HostPort, log: Logger = createLogger()): Promise<never> {
  const config = loadConfig(configPath, { onDeprecated: (line) => log.warn(line) }); // ConfigError → exit 2, from the CLI
  let stopping = false;
  // Revoked: say it on stderr too (systemctl status shows it), and exit 2 so systemd does not restart.
  const options: AgentOptions = {
    config,
    host,
    log: log.child({ agent: config.agent }),
    onFatal: (line) => {
      if (!stopping) process.stderr.write(`wanwatch: ${line}\n`);
      shutdown("revoked", 2);
    },
  };
  const agent = config.role === "probe" ? new ProbeAgent(options) : new ServerAgent(options);

  const shutdown = (why: string, code: number) => {
    if (stopping) return;
    stopping = true;
    log.info("stopping", { reason: why });
    setTimeout(() => {
      log.error("shutdown took too long; exiting anyway", { afterMs: HARD_EXIT_MS });
      process.exit(code || 1);
    }, HARD_EXIT_MS).unref();
    agent.stop().then(
      () => {
        log.info("stopped");
        process.exit(code);
      },
      (err) => {
        log.error("shutdown failed", { error: describeError(err) });
        process.exit(1);
      },
    );
  };
  process.once("SIGTERM", () => shutdown("SIGTERM", 0));
  process.once("SIGINT", () => shutdown("SIGINT", 0));
  // A second signal while stopping is ignored, not fatal: the hard-exit timer bounds the wait.
  process.on("SIGTERM", () => undefined);
  process.on("SIGINT", () => undefined);
  process.on("uncaughtException", (err) => {
    log.error("unexpected error", { error: describeError(err), stack: err.stack });
    shutdown("uncaught exception", 1);
  });

  try {
    await agent.init();
  } catch (err) {
    log.error("cannot start", { error: describeError(err) });
    await agent.stop(1_000).catch(() => undefined);
    throw err instanceof UserError ? err : new UserError(`cannot start: ${describeError(err)}`, 1, { cause: err });
  }
  return new Promise<never>(() => undefined);
}
