// Liveness details (last seen, round trips) change with every heartbeat but are written only
// every few minutes: rows written cost money, and a wake restores them with a grace anyway.
import type { SiteStore } from "../store.ts";
import type { DataUse } from "./data-use.ts";
import type { Observations } from "./observations.ts";
import type { AgentRegistry } from "./registry.ts";

/** How often liveness details are checkpointed to SQLite. */
const CHECKPOINT_MS = 5 * 60_000;

export class Checkpoint {
  private lastAt = 0;

  constructor(
    private readonly store: SiteStore,
    private readonly registry: AgentRegistry,
    private readonly observations: Observations,
    private readonly dataUse: DataUse,
  ) {}

  /** Everything in memory was just read from SQLite. */
  load(now: number): void {
    this.lastAt = now;
  }

  deadline(): number | null {
    return this.registry.all().some((a) => a.dirty) || this.dataUse.dirty ? this.lastAt + CHECKPOINT_MS : null;
  }

  /** Writes what changed, if a checkpoint is due. */
  run(now: number): void {
    if (now - this.lastAt < CHECKPOINT_MS) return;
    const dirty = this.registry.all().filter((a) => a.dirty);
    this.store.transaction(() => {
      for (const a of dirty) this.store.saveAgentRuntime(a.row.id, a.row.runtime);
      this.observations.save();
      this.dataUse.save();
    });
    for (const a of dirty) a.dirty = false;
    this.lastAt = now;
  }
}
