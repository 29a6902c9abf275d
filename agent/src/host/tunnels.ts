// Restarts the site's tunnel after a switch, so it reconnects through the live uplink (a
// connection in flight keeps its old source address and dies with the old uplink). With
// `readyUrl` (cloudflared's metrics /ready), the restart counts only once the tunnel is back.
import type { TunnelConfig, TunnelRestart } from "../config/schema.ts";
import type { TunnelRestarter } from "../directive/applier.ts";
import { httpCall } from "../edge/http.ts";
import { run } from "./exec.ts";
import { explainSwarmFailure } from "./swarm-role.ts";

/** The commands for one restart, in order; the last may wait for the rollout. */
export function restartCommands(t: TunnelRestart, seconds: number): string[][] {
  switch (t.backend) {
    case "swarm":
      return [["docker", "service", "update", "--force", t.service]];
    case "kubernetes": {
      const d = `deployment/${t.service}`;
      return [
        ["kubectl", "rollout", "restart", d, "-n", t.namespace],
        ["kubectl", "rollout", "status", d, "-n", t.namespace, `--timeout=${seconds}s`],
      ];
    }
    case "systemd":
      return [["systemctl", "restart", t.service]];
    case "command":
      return [t.command];
  }
}

export function createTunnelRestarter(t: TunnelConfig, now: () => number = Date.now): TunnelRestarter {
  // Pinned replicas need no restart on a switch: the one on the live uplink is connected already
  // (each is restarted when its own uplink comes back: directive/replica-restarts.ts).
  if (t.backend === "none" || t.backend === "pinned") return { restart: async () => undefined };
  return {
    async restart(signal) {
      const deadline = now() + t.timeoutMs;
      const left = () => Math.max(1, deadline - now());
      try {
        for (const argv of restartCommands(t, Math.ceil(left() / 1000))) await run(argv, { timeoutMs: left(), signal });
      } catch (err) {
        throw t.backend === "swarm" ? await explainSwarmFailure(t.service, err, { timeoutMs: left(), signal }) : err;
      }
      if (t.readyUrl) await waitReady(t.readyUrl, deadline, now, signal);
    },
  };
}

async function waitReady(url: string, deadline: number, now: () => number, signal: AbortSignal): Promise<void> {
  const shown = new URL(url);
  shown.username = shown.password = shown.search = "";
  const started = now();
  let last = "no answer";
  for (;;) {
    signal.throwIfAborted();
    try {
      // node:http, not fetch: Node 18 (Debian 12) has neither a stable fetch nor AbortSignal.any.
      const r = await httpCall(url, { signal, timeoutMs: Math.min(2_000, Math.max(1, deadline - now())) });
      if (r.status >= 200 && r.status < 300) return;
      last = `last answer ${r.status}`;
    } catch (err) {
      const code = (err as { cause?: { code?: string } }).cause?.code;
      last = code === "ECONNREFUSED" ? "connection refused" : (code ?? "no answer");
    }
    if (now() >= deadline) throw new Error(`tunnel not ready after ${now() - started} ms (${shown.href}: ${last})`);
    await new Promise((r) => setTimeout(r, 250));
  }
}
