// The metered uplinks' use this period: the accounting (engine/data-use.ts) held in memory and
// written with the checkpoint, use and counters together, so an object evicted in between measures
// the next reports from the counters it wrote and loses nothing. A threshold passed is written at
// once, with its event: a wake never announces it twice; so is an agent's first baseline.
import { dataPlanOf, type DataUse as UplinkDataUse, type SiteConfig, type UplinkBytes } from "#shared";
import {
  MB,
  THRESHOLDS,
  counterKey,
  currentUse,
  periodEnd,
  record,
  usedShare,
  type Crossing,
  type DataUseState,
  type Metered,
} from "../engine/data-use.ts";
import type { SiteStore } from "../store.ts";
import type { NewEvent } from "./events.ts";

/** Past the last warning, the site leaves a metered uplink as soon as a better one is up. */
export const PROMPT_RETURN_PERCENT = THRESHOLDS[1];

const meteredOf = (config: SiteConfig): Metered[] =>
  config.uplinks.filter((u) => u.metered).map((u) => ({ uplink: u.id, plan: dataPlanOf(u) }));

const round1 = (x: number) => Math.round(x * 10) / 10;
const day = (ms: number) => new Date(ms).toISOString().slice(0, 10);

function describeCrossing(c: Crossing, config: SiteConfig, now: number): NewEvent {
  const name = config.uplinks.find((u) => u.id === c.uplink)?.name;
  const usedMB = round1(c.bytes / MB);
  return {
    at: now,
    kind: "data-cap",
    message: `${c.uplink}${name ? ` (${name})` : ""} has used ${c.percent} % of its ${c.plan.capMB} MB data cap: ${usedMB} MB this period, which ends ${day(c.resetsAt)} 00:00 UTC`,
    data: { uplink: c.uplink, percent: c.percent, usedMB, capMB: c.plan.capMB, resetsAt: c.resetsAt },
  };
}

export class DataUse {
  private state: DataUseState = { uplinks: {}, counters: {} };
  private readonly dirtyUplinks = new Set<string>();
  private readonly dirtyCounters = new Set<string>();

  constructor(private readonly store: SiteStore) {}

  load(): void {
    this.state = this.store.dataUse();
  }

  get dirty(): boolean {
    return this.dirtyUplinks.size > 0 || this.dirtyCounters.size > 0;
  }

  /** An agent's counters, if its heartbeat carried them: the events of the thresholds they passed. */
  receive(config: SiteConfig, agent: string, reports: readonly UplinkBytes[] | undefined, now: number): NewEvent[] {
    if (!reports?.length) return [];
    const metered = meteredOf(config);
    const { state, crossings } = record(this.state, agent, reports, metered, now);
    const counted = reports.filter((r) => metered.some((m) => m.uplink === r.uplink));
    // A first baseline is written at once (once per agent and uplink): lost to an eviction, the
    // next report would be a first one again, and what moved in between would go uncounted.
    const baseline = counted.some((r) => !Object.hasOwn(this.state.counters, counterKey(agent, r.uplink)));
    this.state = state;
    for (const r of counted) {
      this.dirtyUplinks.add(r.uplink);
      this.dirtyCounters.add(counterKey(agent, r.uplink));
    }
    if (crossings.length || baseline) this.save();
    return crossings.map((c) => describeCrossing(c, config, now));
  }

  /** A revoked agent's counters go (its rows too): its use so far stays counted. */
  forget(agent: string): void {
    for (const key of Object.keys(this.state.counters))
      if (key.startsWith(counterKey(agent, ""))) {
        delete this.state.counters[key];
        this.dirtyCounters.delete(key);
      }
    this.store.deleteDataCounters(agent);
  }

  /** Writes what changed (the checkpoint does, inside its transaction). */
  save(): void {
    for (const uplink of this.dirtyUplinks) this.store.saveDataUse(uplink, this.state.uplinks[uplink]!);
    for (const key of this.dirtyCounters) {
      const [agent, uplink] = key.split("\n") as [string, string];
      this.store.saveDataCounter(agent, uplink, this.state.counters[key]!);
    }
    this.dirtyUplinks.clear();
    this.dirtyCounters.clear();
  }

  /** Per metered uplink, this period's use (a period that ended shows the new one, at zero). */
  forStatus(config: SiteConfig, now: number): Map<string, UplinkDataUse> {
    return new Map(
      meteredOf(config).map((m) => {
        const resetDay = m.plan?.resetDay ?? 1;
        const use = currentUse(this.state.uplinks[m.uplink], resetDay, now);
        const percent = usedShare(this.state, m, now);
        return [
          m.uplink,
          {
            usedMB: round1(use.bytes / MB),
            capMB: m.plan?.capMB ?? null,
            percent: percent === null ? null : round1(percent),
            periodStart: use.periodStart,
            resetsAt: periodEnd(use.periodStart, resetDay),
          },
        ];
      }),
    );
  }

  /**
   * The config the decision runs on: while the active uplink is metered and past
   * PROMPT_RETURN_PERCENT of its cap, the return from it waits for no hold-down (the engine's other
   * rules, minDwellMs and a degraded verdict, still hold).
   */
  deciding(config: SiteConfig, active: string | null, now: number): SiteConfig {
    const m = meteredOf(config).find((x) => x.uplink === active);
    const share = m ? usedShare(this.state, m, now) : null;
    if (share === null || share < PROMPT_RETURN_PERCENT) return config;
    return { ...config, policy: { ...config.policy, meteredFailbackAfterMs: 0 } };
  }
}
