// What each agent is told: the active uplink and whether to restart its tunnels, signed with the
// key it speaks with, in answer to each heartbeat and pushed when it changes.
import {
  acceptsNewFields,
  heartbeatExtensions,
  sign,
  type Directive,
  type EdgeMessage,
  type SigningKey,
} from "#shared";
import { agentHeartbeats } from "../engine/cadence.ts";
import { restartFor } from "../engine/tunnels.ts";
import type { AgentRow } from "../store.ts";
import type { ConfiguredSite } from "./configured.ts";
import { keyId, type AgentEntry } from "./registry.ts";
import type { Sockets } from "./sockets.ts";

export interface SignedReply {
  body: string;
  ts: number;
  sig: string;
}

/** What a directive depends on: the site's config, decision and tunnel plan. */
type DirectiveSource = Pick<ConfiguredSite, "config" | "decision" | "plan">;

export function directiveFor(site: DirectiveSource, row: AgentRow): Directive | null {
  const d = site.decision;
  if (d.active === null) return null;
  const view = {
    id: row.id,
    role: row.role,
    tunnelRestarter: row.tunnelRestarter,
    live: true,
    appliedGeneration: null,
    tunnelGeneration: null,
  };
  return {
    generation: d.generation,
    activeUplink: d.active,
    restartTunnels: restartFor(site.plan, site.config.tunnels.restart, view, d.generation),
  };
}

/** The generation this agent was told to restart its tunnels for, has the routes of, and has not restarted for yet. */
export function restartingTunnels(site: DirectiveSource, row: AgentRow): number | null {
  const d = directiveFor(site, row);
  if (!d?.restartTunnels) return null;
  const { appliedGeneration, tunnelGeneration } = row.runtime;
  return (appliedGeneration ?? -1) >= d.generation && (tunnelGeneration ?? -1) < d.generation ? d.generation : null;
}

/**
 * This agent's intervals that are not the site's heartbeatMs (a metered uplink standing by); null
 * when there are none. Every answer carries them: the fewer bytes the better.
 */
function uplinkHeartbeats(
  site: DirectiveSource,
  row: AgentRow,
  agents: readonly AgentRow[],
): Record<string, number> | null {
  const { heartbeatMs } = site.config.policy;
  const slow = Object.entries(agentHeartbeats(site.config, site.decision.active, row, agents)).filter(
    ([, ms]) => ms !== heartbeatMs,
  );
  return slow.length ? Object.fromEntries(slow) : null;
}

/** The directive message, as sent to one agent: the one place it is built. */
export function directiveMessage(
  site: ConfiguredSite,
  row: AgentRow,
  ackSeq: number | null,
  now: number,
  agents: readonly AgentRow[],
): EdgeMessage {
  // The site's timings: agents adopt its heartbeat interval from any answer (one source of timing).
  const accepts = heartbeatExtensions();
  const perUplink = uplinkHeartbeats(site, row, agents);
  const fields = acceptsNewFields(row.runtime.version)
    ? {
        downAfterMs: site.config.policy.downAfterMs,
        heartbeatMs: site.config.policy.heartbeatMs,
        ...(perUplink ? { uplinkHeartbeatMs: perUplink } : {}),
        ...(accepts.length > 0 ? { accepts } : {}),
      }
    : {};
  return { type: "directive", directive: directiveFor(site, row), now, ackSeq, ...fields };
}

/** Signed with the key the agent spoke with: during a rotation, the old secret still checks answers. */
export async function signedDirective(
  site: ConfiguredSite,
  row: AgentRow,
  key: SigningKey,
  ackSeq: number | null,
  now: number,
  agents: readonly AgentRow[],
): Promise<SignedReply> {
  const body = JSON.stringify(directiveMessage(site, row, ackSeq, now, agents));
  const sig = await sign(key, { direction: "down", site: site.id, agent: row.id, ts: now, body });
  return { body, ts: now, sig };
}

/**
 * Sends each connected agent its directive when it, or the agent's intervals, differ from the last
 * it was sent: a metered uplink that becomes active is heartbeated at full rate at once.
 */
export async function pushDirectives(
  site: ConfiguredSite,
  agents: readonly AgentEntry[],
  sockets: Sockets,
  now: number,
): Promise<void> {
  const rows = agents.map((a) => a.row);
  for (const agent of agents) {
    const pushed = JSON.stringify([directiveFor(site, agent.row), uplinkHeartbeats(site, agent.row, rows)]);
    if (agent.pushed === pushed) continue;
    const open = sockets.ofAgent(agent.row.id);
    if (!open.length) continue;
    const frame = JSON.stringify(await signedDirective(site, agent.row, agent.key, null, now, rows));
    const previousFrame = agent.previous
      ? JSON.stringify(await signedDirective(site, agent.row, agent.previous, null, now, rows))
      : null;
    const currentId = keyId(agent.row.signingKey);
    const previousId = agent.row.previousKey ? keyId(agent.row.previousKey) : null;
    for (const { ws, tag } of open) {
      const out = !tag ? null : tag.keyId === currentId ? frame : tag.keyId === previousId ? previousFrame : null;
      if (!out) continue;
      try {
        ws.send(out);
      } catch {
        // A socket closing under us: the agent's other channel or its next heartbeat carries the directive.
      }
    }
    agent.pushed = pushed;
  }
}
