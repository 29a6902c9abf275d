// A site with a config: what a configured object decides with. An object nobody configured has
// none of it, and the type says so (no field of it is ever null).
import type { SiteConfig } from "../../../shared/src/index.ts";
import { nextDeadline, type DecisionState } from "../engine/decision.ts";
import { tunnelDeadline, type TunnelPlan } from "../engine/tunnels.ts";

export interface ConfiguredSite {
  readonly id: string;
  config: SiteConfig;
  decision: DecisionState;
  plan: TunnelPlan | null;
}

/** How late the backstop alarm may judge a site silent on every uplink: 4 × downAfterMs, at most a minute. */
export const silenceBackstopMs = (downAfterMs: number) => Math.min(4 * downAfterMs, 60_000);

/**
 * When the site needs a look with no message arriving. The decision's deadlines are met by
 * messages: while any uplink is up its heartbeats arrive and each one judges every uplink, so a
 * silent one is judged on the first message after its deadline. For those the alarm is only a
 * backstop, for a site silent on every uplink (where nothing can reach the agents anyway); armed
 * at each deadline it would fire every ~2 s of steady state, each run a billed request and each
 * re-arm a billed row. The tunnel plan's bounded wait is met on time.
 */
export function siteDeadlines(site: ConfiguredSite, now: number): (number | null)[] {
  const { config } = site;
  const decidesAt = nextDeadline(site.decision, config, now);
  return [
    decidesAt === null ? null : decidesAt + silenceBackstopMs(config.policy.downAfterMs),
    tunnelDeadline(site.plan, config.tunnels.restart, config.tunnels.maxWaitMs, now),
  ];
}
