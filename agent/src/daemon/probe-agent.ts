// A probe agent: its uplink's reference. It changes nothing on its host; it heartbeats, measures
// the path to the edge (loss and latency, which only a probe reports) and records the directive
// so that `wanwatch agent status` shows what the site does.
import { initialState, newer, type ReconcilerState } from "../directive/reconciler.ts";
import type { DirectiveMessage } from "../edge/channel.ts";
import { EdgePath } from "../host/edge-path.ts";
import { describeError } from "../lib/errors.ts";
import { Agent, type UplinkPart } from "./agent.ts";

export class ProbeAgent extends Agent {
  private observed: ReconcilerState = initialState();

  protected async setUpHost(saved: ReconcilerState): Promise<void> {
    this.observed = saved;
  }

  protected reconcilerState(): ReconcilerState {
    return this.observed;
  }

  protected uplinkPart(): UplinkPart {
    const path = new EdgePath(this.config.edge, this.config.heartbeatMs, undefined, this.now);
    return {
      report: () => ({ path: path.report() }),
      onContact: (at, downAfterMs) => path.contact(at, downAfterMs),
      // A slowed uplink (metered, standing by) is not sampled: a verdict needs 20 handshakes a
      // minute, which would cost it more than its heartbeats. Its verdict lapses; it is judged
      // again within 20 s of becoming active.
      onInterval: (ms, siteMs) => path.pause(ms > siteMs),
      start: () => path.start(),
      stop: () => path.stop(),
    };
  }

  protected onDirective(directive: NonNullable<DirectiveMessage["directive"]>): void {
    const s = this.reconcilerState();
    if (!newer(s.directive, directive)) return;
    this.observed = { ...s, directive };
    this.o.log.info("new directive (probe: nothing to apply)", { ...directive });
    try {
      this.saveState(this.observed);
    } catch (err) {
      this.o.log.error("cannot write the state file", { error: describeError(err) });
    }
  }

  protected async tearDownHost(): Promise<void> {}
}
