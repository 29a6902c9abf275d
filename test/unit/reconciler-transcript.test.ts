// The reconciler step by step, every effect spelled out (logs included: they are what an operator
// reads), so that any change to what it does or says shows.
import { describe, expect, it } from "vitest";
import {
  initialState,
  step,
  type Effect,
  type ReconcilerEvent,
  type ReconcilerState,
} from "../../agent/src/directive/reconciler.ts";

const opts = { retryDelay: (n: number) => 1_000 * 2 ** n };
const d = (generation: number, activeUplink: string, restartTunnels = false) => ({
  generation,
  activeUplink,
  restartTunnels,
});

type Line = [event: ReconcilerEvent, now: number, effects: Effect[], state: Partial<ReconcilerState>];

function play(start: ReconcilerState, lines: Line[]): void {
  let s = start;
  lines.forEach(([event, now, effects, state], i) => {
    const r = step(s, event, now, opts);
    expect(r.effects, `line ${i + 1}: ${event.kind}`).toEqual(effects);
    expect(r.state, `line ${i + 1}: ${event.kind}`).toMatchObject(state);
    s = r.state;
  });
}

const persist: Effect = { kind: "persist" };
const info = (msg: string, fields: Record<string, unknown>): Effect => ({ kind: "log", level: "info", msg, fields });
const warn = (msg: string, fields: Record<string, unknown>): Effect => ({ kind: "log", level: "warn", msg, fields });

describe("reconciler transcript", () => {
  it("resumes what a state file saved", () => {
    expect(
      initialState({ directive: d(3, "isp2"), appliedGeneration: 2, tunnelGeneration: 1, lastError: "routes" }),
    ).toEqual({
      directive: d(3, "isp2"),
      appliedGeneration: 2,
      tunnelGeneration: 1,
      lastError: "routes",
      busy: null,
      failures: 0,
      retryAt: null,
      drift: null,
    });
    expect(initialState()).toEqual({
      directive: null,
      appliedGeneration: null,
      tunnelGeneration: null,
      lastError: null,
      busy: null,
      failures: 0,
      retryAt: null,
      drift: null,
    });
  });

  it("applies, restarts tunnels, retries with backoff, and drops a retry owed to a word taken back", () => {
    play(initialState({ lastError: "from before" }), [
      [
        { kind: "directive", directive: d(1, "isp2", true) },
        0,
        [
          info("new directive", { ...d(1, "isp2", true), previous: null }),
          persist,
          { kind: "apply", generation: 1, activeUplink: "isp2" },
        ],
        { busy: { op: "apply", generation: 1 }, lastError: "from before" },
      ],
      [{ kind: "tunnels-restarted", generation: 1 }, 5, [], { busy: { op: "apply", generation: 1 } }],
      [
        { kind: "applied", generation: 1 },
        10,
        [info("directive applied", { generation: 1 }), persist, { kind: "restart-tunnels", generation: 1 }],
        { appliedGeneration: 1, lastError: null, busy: { op: "restart-tunnels", generation: 1 } },
      ],
      [
        { kind: "applied", generation: 1 },
        15,
        [],
        { appliedGeneration: 1, busy: { op: "restart-tunnels", generation: 1 } },
      ],
      [
        { kind: "tunnels-failed", generation: 1, error: "boom" },
        20,
        [
          warn("restarting tunnels failed", { generation: 1, error: "boom", retryInMs: 1_000 }),
          persist,
          { kind: "wake", at: 1_020 },
        ],
        { busy: null, failures: 1, retryAt: 1_020, lastError: "boom" },
      ],
      [{ kind: "tick" }, 500, [], { busy: null, retryAt: 1_020 }],
      [
        { kind: "tick" },
        1_020,
        [{ kind: "restart-tunnels", generation: 1 }],
        { busy: { op: "restart-tunnels", generation: 1 }, failures: 1 },
      ],
      [
        { kind: "tunnels-failed", generation: 1, error: "again" },
        1_030,
        [
          warn("restarting tunnels failed", { generation: 1, error: "again", retryInMs: 2_000 }),
          persist,
          { kind: "wake", at: 3_030 },
        ],
        { failures: 2, retryAt: 3_030 },
      ],
      // Within the generation the edge takes the restart back: the retry is no longer owed.
      [
        { kind: "directive", directive: d(1, "isp2", false) },
        1_100,
        [persist],
        { directive: d(1, "isp2", false), retryAt: 3_030 },
      ],
      [{ kind: "tick" }, 3_030, [], { busy: null, retryAt: null, tunnelGeneration: null }],
    ]);
  });

  it("a newer generation supersedes a failing one at once; late results of older ones change nothing", () => {
    play(initialState({ directive: d(1, "isp1"), appliedGeneration: 1 }), [
      [{ kind: "directive", directive: d(1, "isp1") }, 0, [], { directive: d(1, "isp1") }],
      [{ kind: "directive", directive: d(0, "isp2") }, 0, [], { directive: d(1, "isp1") }],
      [
        { kind: "directive", directive: d(2, "isp2") },
        100,
        [
          info("new directive", { ...d(2, "isp2"), previous: 1 }),
          persist,
          { kind: "apply", generation: 2, activeUplink: "isp2" },
        ],
        { busy: { op: "apply", generation: 2 } },
      ],
      [
        { kind: "apply-failed", generation: 2, error: "nope" },
        110,
        [
          warn("applying the directive failed", { generation: 2, error: "nope", retryInMs: 1_000 }),
          persist,
          { kind: "wake", at: 1_110 },
        ],
        { failures: 1, retryAt: 1_110, lastError: "nope" },
      ],
      // Same generation, another uplink: the latest word counts, but it is no new directive.
      [
        { kind: "directive", directive: d(2, "isp1") },
        120,
        [persist],
        { directive: d(2, "isp1"), failures: 1, retryAt: 1_110 },
      ],
      [
        { kind: "directive", directive: d(3, "isp2") },
        200,
        [
          info("new directive", { ...d(3, "isp2"), previous: 2 }),
          persist,
          { kind: "apply", generation: 3, activeUplink: "isp2" },
        ],
        { failures: 0, retryAt: null, busy: { op: "apply", generation: 3 } },
      ],
      [
        { kind: "apply-failed", generation: 2, error: "late" },
        210,
        [],
        { lastError: "nope", busy: { op: "apply", generation: 3 } },
      ],
      [{ kind: "applied", generation: 2 }, 220, [], { appliedGeneration: 1 }],
      [
        { kind: "directive", directive: d(4, "isp1") },
        300,
        [info("new directive", { ...d(4, "isp1"), previous: 3 }), persist],
        { busy: { op: "apply", generation: 3 } },
      ],
      // The failure of a superseded generation does not delay the newer one.
      [
        { kind: "apply-failed", generation: 3, error: "old" },
        310,
        [
          warn("applying the directive failed", { generation: 3, error: "old", retryInMs: 0 }),
          persist,
          { kind: "apply", generation: 4, activeUplink: "isp1" },
        ],
        { failures: 0, retryAt: null, lastError: "old", busy: { op: "apply", generation: 4 } },
      ],
      [
        { kind: "applied", generation: 4 },
        320,
        [info("directive applied", { generation: 4 }), persist],
        { appliedGeneration: 4, busy: null, lastError: null, failures: 0, retryAt: null },
      ],
    ]);
  });

  it("a restart done for a generation is not done again, and counts the newest generation it covered", () => {
    play(initialState({ directive: d(5, "isp2", true), appliedGeneration: 5, tunnelGeneration: 7 }), [
      [{ kind: "tick" }, 0, [], { busy: null, tunnelGeneration: 7 }],
      // Results nobody is waiting for: nothing running.
      [{ kind: "applied", generation: 5 }, 1, [], { busy: null }],
      [{ kind: "tunnels-restarted", generation: 5 }, 2, [], { busy: null, tunnelGeneration: 7 }],
      [{ kind: "apply-failed", generation: 5, error: "x" }, 3, [], { lastError: null }],
      [{ kind: "tunnels-failed", generation: 5, error: "x" }, 4, [], { lastError: null }],
      [
        { kind: "directive", directive: d(8, "isp2", true) },
        10,
        [
          info("new directive", { ...d(8, "isp2", true), previous: 5 }),
          persist,
          { kind: "apply", generation: 8, activeUplink: "isp2" },
        ],
        { busy: { op: "apply", generation: 8 } },
      ],
      [
        { kind: "applied", generation: 8 },
        20,
        [info("directive applied", { generation: 8 }), persist, { kind: "restart-tunnels", generation: 8 }],
        { appliedGeneration: 8 },
      ],
      // Results of another operation or generation than the one running: ignored.
      [
        { kind: "apply-failed", generation: 8, error: "not this" },
        22,
        [],
        { busy: { op: "restart-tunnels", generation: 8 }, lastError: null },
      ],
      [
        { kind: "tunnels-restarted", generation: 6 },
        24,
        [],
        { busy: { op: "restart-tunnels", generation: 8 }, tunnelGeneration: 7 },
      ],
      [
        { kind: "tunnels-restarted", generation: 8 },
        30,
        [info("tunnels restarted", { generation: 8 }), persist],
        { tunnelGeneration: 8, busy: null },
      ],
    ]);
  });
});
