// Why `docker service update` failed, in wanwatch's terms: only a Swarm manager can update a
// service, so a worker enrolled as the tunnel restarter fails on every switch. Docker's own line
// says "not a swarm manager"; this one says which node to enrol instead.
import { run } from "./exec.ts";

/** The node's Swarm role, from `docker info`; null when docker cannot tell. */
async function swarmRole(o: { timeoutMs: number; signal: AbortSignal }): Promise<"manager" | "worker" | "none" | null> {
  const out = await run(
    ["docker", "info", "--format", "{{.Swarm.LocalNodeState}} {{.Swarm.ControlAvailable}}"],
    o,
  ).catch(() => null);
  if (out === null) return null;
  const [state, control] = out.trim().split(" ");
  if (control === "true") return "manager";
  return state === "active" ? "worker" : "none";
}

/** The failure of a service update, explained when this node is not a manager. */
export async function explainSwarmFailure(
  service: string,
  err: unknown,
  o: { timeoutMs: number; signal: AbortSignal },
): Promise<unknown> {
  const role = await swarmRole(o);
  if (role === "worker")
    return new Error(
      `this node is a Docker Swarm worker: only a manager can restart service "${service}" (enrol a manager node as the tunnel restarter, and this one without --tunnel-restarter)`,
      { cause: err },
    );
  if (role === "none")
    return new Error(
      `this node is not in a Docker Swarm: service "${service}" can only be restarted on a manager node`,
      { cause: err },
    );
  return err;
}
