// A heartbeat's way in: authenticated, parsed, attributed to the uplink it travelled through, and
// folded into its agent; the caller runs the site on the decision event it yields.
import { familyOf, type Observed } from "../attribution.ts";
import type { DecisionEvent } from "../engine/decision.ts";
import { ok, type Result } from "../failure.ts";
import type { Authenticated, Authenticator, SignedMessage } from "./auth.ts";
import type { ConfiguredSite } from "./configured.ts";
import type { DataUse } from "./data-use.ts";
import { restartingTunnels } from "./directives.ts";
import type { NewEvent } from "./events.ts";
import { absorb, parseHeartbeat } from "./ingest.ts";
import type { Observations } from "./observations.ts";
import type { AgentRow } from "../store.ts";
import type { AgentRegistry } from "./registry.ts";

/** A heartbeat as the Worker received it over HTTP: the signed parts plus what the edge saw. */
export interface HeartbeatRequest extends SignedMessage {
  seen: Observed;
}

export interface Received extends Authenticated {
  seq: number;
  event: DecisionEvent;
  events: NewEvent[];
  /** The site's agents: who watches a metered standby sets each one's interval in the answer. */
  agents: readonly AgentRow[];
}

export class Intake {
  constructor(
    private readonly auth: Authenticator,
    private readonly registry: AgentRegistry,
    private readonly observations: Observations,
    private readonly dataUse: DataUse,
  ) {}

  /** `channelUplink`: the uplink of the channel it came on (null over HTTP). */
  async receive(
    site: ConfiguredSite,
    m: SignedMessage,
    seen: Observed,
    channelUplink: string | null,
    now: number,
  ): Promise<Result<Received>> {
    const auth = await this.auth.authenticate(site, m, familyOf(seen.ip), now);
    if (!auth.ok) return auth;
    const { agent } = auth.value;
    const parsed = parseHeartbeat(m.body, site.config, agent.row, channelUplink);
    if (!parsed.ok) return parsed;
    const hb = parsed.value;
    const probe = agent.row.role === "probe";
    const { evidenceFor, misroutedVia } = probe
      ? { evidenceFor: hb.uplink, misroutedVia: null }
      : this.observations.attribute(hb.uplink, seen);
    if (probe)
      this.observations.learn(
        hb.uplink,
        seen,
        { rttMs: hb.rttEdgeMs ?? null, gatewayRttMs: hb.rttGatewayMs ?? null, path: hb.path ?? null },
        now,
      );
    const heardOver = evidenceFor ? this.observations.noteEvidence(site.config, evidenceFor, seen, now) : [];
    const absorbed = absorb(
      agent.row,
      hb,
      misroutedVia,
      seen,
      (runtime) => restartingTunnels(site, { ...agent.row, runtime }),
      now,
    );
    this.registry.heard(agent, absorbed.runtime, absorbed.persist);
    const events = [
      ...absorbed.events,
      ...heardOver,
      ...this.dataUse.receive(site.config, agent.row.id, hb.uplinkBytes, now),
    ];
    // Only a probe's view of its path judges the uplink's quality: it sits behind that uplink alone.
    // Only a server can witness: a probe has one uplink to speak through.
    const event: DecisionEvent = evidenceFor
      ? {
          kind: "heartbeat",
          uplink: evidenceFor,
          path: probe ? hb.path : null,
          witness: probe ? null : { agent: agent.row.id, unanswered: hb.unanswered ?? [] },
        }
      : { kind: "tick" };
    return ok({ ...auth.value, seq: hb.seq, event, events, agents: this.registry.rows() });
  }
}
