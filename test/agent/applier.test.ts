// The adapter around the reconciler, with a switcher that fails on purpose: real timers, real
// retries, the state it would persist.
import { describe, expect, it } from "vitest";
import { DirectiveApplier, type Switcher } from "../../agent/src/directive/applier.ts";
import type { ReconcilerState } from "../../agent/src/directive/reconciler.ts";
import { createLogger } from "../../agent/src/lib/log.ts";

function setup(failApplies: number, opts: { slowMs?: number; failPersists?: number } = {}) {
  const calls: string[] = [];
  const saved: ReconcilerState[] = [];
  const lines: any[] = [];
  let failures = failApplies;
  let persistFailures = opts.failPersists;
  const switcher: Switcher = {
    routed: async () => ({ ipv4: null, ipv6: null, withIpv6: [] }),
    apply: async (uplink, edge, signal) => {
      calls.push(`apply ${uplink} via ${edge}`);
      if (opts.slowMs)
        await new Promise((r, j) => {
          const t = setTimeout(r, opts.slowMs);
          signal.addEventListener("abort", () => (clearTimeout(t), j(signal.reason)));
        });
      if (failures-- > 0)
        throw new Error("nmcli: connection 'Wired connection 2' not found", { cause: new Error("exit 10") });
      if (persistFailures === undefined) return { changed: true };
      return {
        changed: true,
        persist: async () => {
          calls.push("persist");
          if (persistFailures!-- > 0) throw new Error("nmcli: NetworkManager is not running");
        },
      };
    },
  };
  const applier = new DirectiveApplier({
    switcher,
    tunnels: { restart: async () => void calls.push("restart tunnels") },
    edgeAddress: async () => "192.0.2.1",
    save: (s) => saved.push(s),
    log: createLogger({ write: (l) => lines.push(JSON.parse(l)) }),
    retryDelay: (n) => 20 * 2 ** n,
  });
  return { applier, calls, saved, lines };
}

async function until(pred: () => boolean, ms = 2_000) {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error("timed out");
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe("DirectiveApplier", () => {
  it("retries a failed apply with backoff, reporting lastError meanwhile, then tunnels once", async () => {
    const { applier, calls, saved, lines } = setup(2);
    applier.offer({ generation: 4, activeUplink: "isp2", restartTunnels: true });
    await until(() => applier.state.lastError !== null);
    expect(applier.state.lastError).toBe("nmcli: connection 'Wired connection 2' not found: exit 10");
    await until(() => applier.state.tunnelGeneration === 4);
    expect(calls).toEqual([
      "apply isp2 via 192.0.2.1",
      "apply isp2 via 192.0.2.1",
      "apply isp2 via 192.0.2.1",
      "restart tunnels",
    ]);
    expect(applier.state).toMatchObject({ appliedGeneration: 4, tunnelGeneration: 4, lastError: null });
    expect(saved.at(-1)).toMatchObject({ appliedGeneration: 4, tunnelGeneration: 4 });
    expect(lines.filter((l) => l.msg === "applying the directive failed").map((l) => l.retryInMs)).toEqual([20, 40]);
    // The same directive again: nothing more to do.
    applier.offer({ generation: 4, activeUplink: "isp2", restartTunnels: true });
    await new Promise((r) => setTimeout(r, 50));
    expect(calls).toHaveLength(4);
  });

  it("the routes first, then what persists them: its failure is the apply's, reported and retried, and holds back the tunnels", async () => {
    const { applier, calls, lines } = setup(0, { failPersists: 1 });
    applier.offer({ generation: 2, activeUplink: "isp2", restartTunnels: true });
    await until(() => applier.state.lastError !== null);
    expect(applier.state).toMatchObject({ lastError: "nmcli: NetworkManager is not running", appliedGeneration: null });
    await until(() => applier.state.tunnelGeneration === 2);
    expect(calls).toEqual([
      "apply isp2 via 192.0.2.1",
      "persist",
      "apply isp2 via 192.0.2.1",
      "persist",
      "restart tunnels",
    ]);
    // "routes switched" is logged once the routes are verified, before they are persisted.
    expect(lines.filter((l) => l.msg === "routes switched")).toHaveLength(2);
    expect(applier.state).toMatchObject({ appliedGeneration: 2, lastError: null });
  });

  it("stop() waits for the operation in flight, then starts nothing new", async () => {
    const { applier, calls } = setup(0, { slowMs: 100 });
    applier.offer({ generation: 1, activeUplink: "isp1", restartTunnels: true });
    await until(() => calls.length === 1);
    expect(await applier.stop(2_000)).toBe(true);
    expect(applier.state.appliedGeneration).toBe(1);
    await new Promise((r) => setTimeout(r, 50));
    // The tunnel restart is left for the next start (it resumes from the state file).
    expect(calls).toEqual(["apply isp1 via 192.0.2.1"]);
  });

  it("stop() cancels a hung operation after the grace period, without recording it as a failure", async () => {
    const { applier, saved } = setup(0, { slowMs: 5_000 });
    applier.offer({ generation: 1, activeUplink: "isp1", restartTunnels: false });
    const t0 = Date.now();
    expect(await applier.stop(100)).toBe(false);
    // Cancelled after its 100 ms grace, well before the hung operation's 5 s would end.
    console.log(`stop() returned after ${Date.now() - t0} ms (grace 100 ms)`);
    expect(Date.now() - t0).toBeLessThan(3_000);
    expect(applier.state).toMatchObject({
      busy: null,
      lastError: null,
      appliedGeneration: null,
      directive: { generation: 1 },
    });
    // What was saved still has the directive to apply: the next start resumes it.
    expect(saved.at(-1)).toMatchObject({ appliedGeneration: null, directive: { generation: 1 } });
  });
});
