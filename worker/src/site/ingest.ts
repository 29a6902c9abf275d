// A heartbeat, once its signature holds: parsed, checked against the site, and folded into what
// the edge knows of its agent. Pure: the caller writes what it returns.
import { Heartbeat, fieldIssues, type RouteDrift, type SiteConfig } from "#shared";
import { familyOf, misrouteKey, type Observed } from "../attribution.ts";
import { fail, ok, parseJson, type Result } from "../failure.ts";
import type { AgentRow, AgentRuntime } from "../store.ts";
import type { NewEvent } from "./events.ts";

/** The body and the uplink claims of a heartbeat, before anything is believed. */
export function parseHeartbeat(
  body: string,
  config: SiteConfig,
  row: AgentRow,
  channelUplink: string | null,
): Result<Heartbeat> {
  const json = parseJson(body, "heartbeat body");
  if (!json.ok) return json;
  const parsed = Heartbeat.safeParse(json.value);
  if (!parsed.success) return fail(400, "validation_failed", "invalid heartbeat", fieldIssues(parsed.error));
  const hb = parsed.data;
  const issue = (message: string) => fail(400, "validation_failed", "invalid heartbeat", [{ path: "uplink", message }]);
  if (!config.uplinks.some((u) => u.id === hb.uplink)) return issue(`no uplink "${hb.uplink}" in the site config`);
  if (channelUplink && hb.uplink !== channelUplink)
    return issue(`"${hb.uplink}" sent on the channel for "${channelUplink}"`);
  if (row.uplink && hb.uplink !== row.uplink) return issue(`probe "${row.id}" sits behind "${row.uplink}"`);
  return ok(hb);
}

export interface Absorbed {
  runtime: AgentRuntime;
  events: NewEvent[];
  /** What a restart must not lose changed: write it now rather than at the checkpoint. */
  persist: boolean;
}

/**
 * Folds a heartbeat into the agent's runtime. `restartingTunnels` tells, from the new runtime, the
 * generation the agent was told to restart its tunnels for and has not yet: an error it reports
 * then comes from that restart.
 */
export function absorb(
  row: AgentRow,
  hb: Heartbeat,
  misroutedVia: string | null,
  seen: Observed,
  restartingTunnels: (runtime: AgentRuntime) => number | null,
  now: number,
): Absorbed {
  const before = row.runtime;
  const family = familyOf(seen.ip);
  const key = misrouteKey(hb.uplink, family);
  const misrouted = { ...before.misrouted };
  if (misroutedVia) misrouted[key] = misroutedVia;
  else delete misrouted[key];
  const after: AgentRuntime = {
    ...before,
    misrouted,
    lastSeenAt: now,
    uplinksSeen: { ...before.uplinksSeen, [hb.uplink]: now },
    ...(family === 6 ? { uplinksSeen6: { ...before.uplinksSeen6, [hb.uplink]: now } } : {}),
    appliedGeneration: hb.appliedGeneration,
    tunnelGeneration: hb.tunnelGeneration,
    lastError: hb.lastError,
    version: hb.version,
    routedUplink: hb.routedUplink ?? null,
    clockOffsetMs: hb.clockOffsetMs ?? null,
    stale: false,
  };
  const drifts = (hb.routeDrifts ?? []).filter((d) => d.at > (before.lastDriftAt ?? -1));
  if (drifts.length) after.lastDriftAt = Math.max(...drifts.map((d) => d.at));
  const id = row.id;
  const events: NewEvent[] = [];
  // Own keys only: "constructor" is a valid uplink id, and a member of every object.
  const over = family === 6 ? " over IPv6" : "";
  if (misroutedVia !== (Object.hasOwn(before.misrouted, key) ? before.misrouted[key] : null))
    events.push(
      misroutedVia
        ? {
            at: now,
            kind: "misrouted",
            message: `${id}: heartbeats for ${hb.uplink}${over} arrive through ${misroutedVia} (check its policy routing); not counted for ${hb.uplink}`,
            data: { agent: id, claimed: hb.uplink, via: misroutedVia, ip: seen.ip },
          }
        : {
            at: now,
            kind: "misrouted-cleared",
            message: `${id}: heartbeats for ${hb.uplink}${over} travel through ${hb.uplink} again`,
            data: { agent: id, uplink: hb.uplink },
          },
    );
  if (after.appliedGeneration !== null && after.appliedGeneration !== before.appliedGeneration)
    events.push({
      at: now,
      kind: "applied",
      message: `${id} applied generation ${after.appliedGeneration}${after.routedUplink ? ` (routes via ${after.routedUplink})` : ""}`,
      data: { agent: id, generation: after.appliedGeneration },
    });
  for (const d of drifts) events.push(driftEvent(id, d, hb.clockOffsetMs ?? null, now));
  if (after.tunnelGeneration !== null && after.tunnelGeneration !== before.tunnelGeneration)
    events.push({
      at: now,
      kind: "tunnels-restarted",
      message: `${id} restarted tunnels for generation ${after.tunnelGeneration}`,
      data: { agent: id, generation: after.tunnelGeneration },
    });
  if (after.lastError !== before.lastError && after.lastError !== null) {
    const generation = restartingTunnels(after);
    events.push(
      generation !== null
        ? {
            at: now,
            kind: "tunnel-restart-failed",
            message: `${id} could not restart the tunnels for generation ${generation}: ${after.lastError}`,
            data: { agent: id, generation },
          }
        : { at: now, kind: "agent-error", message: `${id}: ${after.lastError}`, data: { agent: id } },
    );
  }
  if (before.stale) events.push({ at: now, kind: "agent-back", message: `${id} is heard again`, data: { agent: id } });
  if (after.version !== before.version && before.version !== null)
    events.push({
      at: now,
      kind: "agent-version",
      message: `${id} now runs ${after.version}`,
      data: { agent: id, from: before.version, to: after.version },
    });
  // What a restart must not lose is written now (a first contact included, so a restart never
  // shows an agent as "never seen"); last-seen times wait for the checkpoint.
  const persist =
    events.length > 0 || after.routedUplink !== before.routedUplink || after.version !== before.version || before.stale;
  return { runtime: after, events, persist };
}

/** One repaired drift, said in what changed: which family's default route led where instead. */
function driftEvent(agent: string, d: RouteDrift, clockOffsetMs: number | null, now: number): NewEvent {
  const led = [
    d.routedUplink !== d.activeUplink ? `IPv4 through ${d.routedUplink ?? "no uplink"}` : null,
    d.routedUplink6 !== d.activeUplink && (d.routedUplink6 !== null || d.routedUplink === d.activeUplink)
      ? `IPv6 through ${d.routedUplink6 ?? "no uplink"}`
      : null,
  ].filter((x) => x !== null);
  return {
    at: now,
    kind: "route-drift",
    message: `${agent}'s default route left ${d.activeUplink} (${led.join(", ") || "changed"}); the agent put it back in ${d.repairedInMs} ms`,
    data: {
      agent,
      activeUplink: d.activeUplink,
      routedUplink: d.routedUplink,
      routedUplink6: d.routedUplink6,
      driftAt: d.at + (clockOffsetMs ?? 0),
      repairedInMs: d.repairedInMs,
    },
  };
}
