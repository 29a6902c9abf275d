// A site with a config: what a configured object decides with. An object nobody configured has
// none of it, and the type says so (no field of it is ever null).
import type { SiteConfig } from "#shared";
import { initialState, nextDeadline, reshapedState, restoredState, type DecisionState } from "../engine/decision.ts";
import { tunnelDeadline, type TunnelPlan } from "../engine/tunnels.ts";
import type { SiteStore } from "../store.ts";

export interface ConfiguredSite {
  readonly id: string;
  config: SiteConfig;
  decision: DecisionState;
  plan: TunnelPlan | null;
}

/** The site as stored, on wake; null while nobody has configured it. */
export function loadSite(store: SiteStore, now: number): ConfiguredSite | null {
  const id = store.site();
  const config = store.config();
  if (id === null || !config) return null;
  const saved = store.decision();
  return {
    id,
    config,
    decision: saved ? restoredState(saved, config, now) : initialState(config, now),
    plan: store.tunnelPlan(),
  };
}

/** The site under a new config: judging starts afresh for uplinks it adds; the rest carries over. */
export function configured(before: ConfiguredSite | null, id: string, config: SiteConfig, now: number): ConfiguredSite {
  const decision = before ? reshapedState(before.decision, config, now) : initialState(config, now);
  return { id, config, decision, plan: before?.plan ?? null };
}

/** The site configured (anew): its config, its decision and a `config` event written together. */
export function saveConfigured(
  store: SiteStore,
  before: ConfiguredSite | null,
  id: string,
  config: SiteConfig,
  now: number,
): ConfiguredSite {
  if (!before) store.migrate();
  const site = configured(before, id, config, now);
  const message = before ? "site config replaced" : "site created";
  store.transaction(() => {
    store.saveSite(id, config);
    store.saveDecision(site.decision);
    store.appendEvents([{ at: now, kind: "config", message, data: { uplinks: config.uplinks.map((u) => u.id) } }]);
  });
  return site;
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
