import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { SiteConfig } from "#shared";
import { initialState, step, type DecisionState } from "../../worker/src/engine/decision.ts";
import type { TunnelPlan } from "../../worker/src/engine/tunnels.ts";
import type { EventKind, EventOf, NewEvent } from "../../worker/src/site/events.ts";
import { transition, type TransitionInput } from "../../worker/src/site/transition.ts";
import type { AgentRow } from "../../worker/src/store.ts";

const T0 = 1_000_000;
const UPLINKS = ["isp1", "isp2", "isp3"];

const configs = fc
  .record({
    n: fc.integer({ min: 2, max: 3 }),
    downAfterMs: fc.integer({ min: 2_000, max: 10_000 }),
    failbackAfterMs: fc.integer({ min: 0, max: 20_000 }),
    minDwellMs: fc.integer({ min: 0, max: 20_000 }),
    restart: fc.constantFrom("cluster", "per-server", "none"),
  })
  .map(({ n, restart, ...policy }) =>
    SiteConfig.parse({
      uplinks: UPLINKS.slice(0, n).map((id, i) => ({ id, priority: i + 1 })),
      policy: { heartbeatMs: 1_000, ...policy },
      tunnels: { restart, maxWaitMs: 30_000 },
    }),
  );

/** A decision reached by a history of heartbeats, once a second, from the uplinks that speak in each phase. */
function decided(
  config: SiteConfig,
  phases: { seconds: number; speakers: boolean[] }[],
): { state: DecisionState; now: number } {
  let state = initialState(config, T0);
  let now = T0;
  for (const p of phases)
    for (let s = 0; s < p.seconds; s++) {
      now += 1_000;
      const speakers = config.uplinks.filter((_, i) => p.speakers[i]);
      state = step(state, { kind: "tick" }, now, config).state;
      for (const u of speakers) state = step(state, { kind: "heartbeat", uplink: u.id }, now, config).state;
    }
  return { state, now };
}

const phases = fc.array(
  fc.record({
    seconds: fc.integer({ min: 1, max: 15 }),
    speakers: fc.array(fc.boolean(), { minLength: 3, maxLength: 3 }),
  }),
  { maxLength: 8 },
);

/** An agent last heard `ago` ms before now through each uplink it has been heard through, at most. */
const agents = fc.array(
  fc.record({
    role: fc.constantFrom("server", "probe"),
    age: fc.integer({ min: 0, max: 200_000 }),
    // Mostly heard lately (live), sometimes long ago (stale), sometimes never.
    seenAgo: fc.option(
      fc.oneof(
        { arbitrary: fc.integer({ min: 0, max: 2_000 }), weight: 3 },
        { arbitrary: fc.integer({ min: 0, max: 60_000 }), weight: 2 },
      ),
    ),
    uplinkAgo: fc.array(fc.option(fc.integer({ min: 0, max: 60_000 })), { minLength: 3, maxLength: 3 }),
    stale: fc.boolean(),
    cutOff: fc.subarray(UPLINKS),
  }),
  { maxLength: 5 },
);

type AgentSpec = {
  role: "server" | "probe";
  age: number;
  seenAgo: number | null;
  uplinkAgo: (number | null)[];
  stale: boolean;
  cutOff: string[];
};

function rows(specs: AgentSpec[], config: SiteConfig, now: number): AgentRow[] {
  return specs.map((a, i) => {
    const uplinksSeen: Record<string, number> = {};
    config.uplinks.forEach((u, j) => {
      const ago = a.uplinkAgo[j];
      if (a.seenAgo !== null && ago !== null && ago !== undefined) uplinksSeen[u.id] = now - Math.max(ago, a.seenAgo);
    });
    return {
      id: `a${i}`,
      role: a.role,
      uplink: null,
      tunnelRestarter: false,
      signingKey: "k",
      previousKey: null,
      previousUntil: null,
      createdAt: now - a.age,
      runtime: {
        lastSeenAt: a.seenAgo === null ? null : now - a.seenAgo,
        appliedGeneration: null,
        tunnelGeneration: null,
        lastError: null,
        version: "0.2.0",
        routedUplink: null,
        uplinksSeen,
        misrouted: {},
        cutOff: a.cutOff.filter((u) => config.uplinks.some((x) => x.id === u)),
        stale: a.stale,
      },
    };
  });
}

const inputs = fc
  .record({
    config: configs,
    phases,
    agents,
    wokeAgo: fc.integer({ min: 0, max: 60_000 }),
    beat: fc.option(fc.integer({ min: 0, max: 2 })),
    later: fc.integer({ min: 0, max: 15_000 }),
  })
  .map(({ config, phases, agents: specs, wokeAgo, beat, later }): TransitionInput => {
    const { state, now: heard } = decided(config, phases);
    const now = heard + later;
    const uplink = beat === null ? undefined : config.uplinks[beat % config.uplinks.length]!.id;
    const plan: TunnelPlan | null =
      state.generation > 1
        ? {
            generation: state.generation,
            switchedAt: state.lastSwitchAt ?? now,
            restarter: null,
            requestedAt: null,
            doneAt: null,
          }
        : null;
    return {
      config,
      decision: state,
      plan,
      agents: rows(specs, config, now),
      wokeAt: now - wokeAgo,
      event: uplink ? { kind: "heartbeat", uplink } : { kind: "tick" },
      extra: [],
      now,
    };
  });

const kinds = <K extends EventKind>(events: NewEvent[], kind: K) =>
  events.filter((e): e is EventOf<K> => e.kind === kind);
const upUplinks = (d: DecisionState) =>
  Object.entries(d.uplinks)
    .filter(([, u]) => u.state === "up")
    .map(([id]) => id);

describe("site transition properties", () => {
  it("calls an agent stale once: heard before, not within twice downAfterMs, not already announced, and not just after a wake", () => {
    let seen = 0;
    fc.assert(
      fc.property(inputs, (i) => {
        const t = transition(i);
        const limit = 2 * i.config.policy.downAfterMs;
        const settled = i.now - i.wokeAt >= limit;
        const expected = i.agents
          .filter(
            (a) =>
              settled && !a.runtime.stale && a.runtime.lastSeenAt !== null && i.now - a.runtime.lastSeenAt >= limit,
          )
          .map((a) => a.id);
        seen += expected.length;
        expect(kinds(t.events, "agent-stale").map((e) => e.data.agent)).toEqual(expected);
        for (const id of expected) expect(t.runtimes.get(id)?.stale).toBe(true);
        for (const [id, runtime] of t.runtimes)
          if (!expected.includes(id)) expect(runtime.stale).toBe(i.agents.find((a) => a.id === id)!.runtime.stale);
      }),
      { numRuns: 400 },
    );
    expect(seen).toBeGreaterThan(30);
  });

  it("announces a server cut off from an uplink that has been up for everyone else, once, and never a probe", () => {
    let seen = 0;
    fc.assert(
      fc.property(inputs, (i) => {
        const t = transition(i);
        const limit = 2 * i.config.policy.downAfterMs;
        const settled = i.now - i.wokeAt >= limit;
        const expected = i.agents.flatMap((a) => {
          const seenAt = a.runtime.lastSeenAt;
          const live = seenAt !== null && i.now - seenAt < limit;
          if (!settled || a.role !== "server" || !live || i.now - a.createdAt < limit) return [];
          return Object.entries(t.decision.uplinks)
            .filter(
              ([u, rt]) =>
                rt.state === "up" &&
                i.now - rt.stateSince >= limit &&
                !(i.now - (a.runtime.uplinksSeen[u] ?? -Infinity) < limit),
            )
            .filter(([u]) => !(a.runtime.cutOff ?? []).includes(u))
            .map(([u]) => `${a.id}/${u}`);
        });
        seen += expected.length;
        const announced = kinds(t.events, "agent-cut-off").map((e) => `${e.data.agent}/${e.data.uplink}`);
        expect(announced.sort()).toEqual(expected.sort());
      }),
      { numRuns: 400 },
    );
    // The generator must reach the case it claims to test.
    expect(seen).toBeGreaterThan(10);
  });

  it("judges no agent just after a wake", () => {
    fc.assert(
      fc.property(inputs, (i) => {
        const woken = { ...i, wokeAt: i.now - 2 * i.config.policy.downAfterMs + 1 };
        const t = transition(woken);
        expect(t.runtimes.size).toBe(0);
        expect(t.events.filter((e) => ["agent-stale", "agent-cut-off", "agent-path-back"].includes(e.kind))).toEqual(
          [],
        );
      }),
      { numRuns: 200 },
    );
  });

  it("records one switch per generation, and pushes exactly when the generation or the tunnel plan moved", () => {
    let switched = 0;
    fc.assert(
      fc.property(inputs, (i) => {
        const t = transition(i);
        const switches = kinds(t.events, "switch");
        switched += switches.length;
        expect(switches.length).toBe(t.decision.generation - i.decision.generation);
        expect(t.push).toBe(
          t.decision.generation !== i.decision.generation || JSON.stringify(t.plan) !== JSON.stringify(i.plan),
        );
        if (switches.length) expect(t.saveDecision).toBe(true);
      }),
      { numRuns: 400 },
    );
    expect(switched).toBeGreaterThan(30);
  });

  it("starts a tunnel plan for each switch's generation, at that moment, and none for a site's first choice; without a switch the plan stays that generation's", () => {
    let switched = 0;
    fc.assert(
      fc.property(inputs, (i) => {
        const t = transition(i);
        const [sw] = kinds(t.events, "switch");
        if (!sw) expect(t.plan?.generation ?? null).toBe(i.plan?.generation ?? null);
        else if (i.decision.active === null) expect(t.plan).toBeNull();
        else {
          switched++;
          expect(t.plan).toMatchObject({ generation: t.decision.generation, switchedAt: i.now });
          expect(t.savePlan).toBe(true);
        }
      }),
      { numRuns: 400 },
    );
    expect(switched).toBeGreaterThan(20);
  });

  it("passes over a restarter whose restart of this switch reports an error, for a live one that has not failed it", () => {
    const config = SiteConfig.parse({
      uplinks: [
        { id: "isp1", priority: 1 },
        { id: "isp2", priority: 2 },
      ],
      policy: { heartbeatMs: 1_000, downAfterMs: 3_000 },
      tunnels: { restart: "cluster" },
    });
    // isp1 speaks, then only isp2: one failover, generation 2.
    const { state, now } = decided(config, [
      { seconds: 5, speakers: [true, true] },
      { seconds: 6, speakers: [false, true] },
    ]);
    expect(state).toMatchObject({ active: "isp2", generation: 2 });
    const restarter = (id: string, lastError: string | null): AgentRow => {
      const [row] = rows(
        [{ role: "server", age: 60_000, seenAgo: 0, uplinkAgo: [null, 0, null], stale: false, cutOff: [] }],
        config,
        now,
      );
      return {
        ...row!,
        id,
        tunnelRestarter: true,
        runtime: { ...row!.runtime, appliedGeneration: 2, tunnelGeneration: 1, lastError },
      };
    };
    const plan: TunnelPlan = {
      generation: 2,
      switchedAt: now - 2_000,
      restarter: "a",
      requestedAt: now - 1_000,
      doneAt: null,
    };
    const step1 = (a: AgentRow) =>
      transition({
        config,
        decision: state,
        plan,
        agents: [a, restarter("b", null)],
        wokeAt: now - 60_000,
        event: { kind: "tick" },
        extra: [],
        now,
      });
    const failing = step1(
      restarter("a", 'this node is a Docker Swarm worker: only a manager can restart service "tunnel"'),
    );
    expect(failing.plan).toMatchObject({ restarter: "b", requestedAt: now, failed: ["a"] });
    expect(kinds(failing.events, "tunnel-restart-requested").map((e) => e.data)).toEqual([
      expect.objectContaining({ agent: "b", generation: 2 }),
    ]);
    const working = step1(restarter("a", null));
    expect(working.plan).toEqual(plan);
    expect(working.events).toEqual([]);
  });

  it("says the site went offline exactly when its last up uplink stopped being up", () => {
    let offline = 0;
    fc.assert(
      fc.property(inputs, (i) => {
        const t = transition(i);
        const wentOffline = upUplinks(i.decision).length > 0 && upUplinks(t.decision).length === 0;
        if (wentOffline) offline++;
        expect(kinds(t.events, "site-offline").length).toBe(wentOffline ? 1 : 0);
        for (const { data: d } of kinds(t.events, "uplink"))
          expect([i.decision.uplinks[d.uplink]!.state, t.decision.uplinks[d.uplink]!.state]).toEqual([d.from, d.to]);
      }),
      { numRuns: 400 },
    );
    expect(offline).toBeGreaterThan(5);
  });
});
