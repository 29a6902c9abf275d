// The site's decision policy, pure: (state, event, now) → (state, effects). No I/O, no clock.
import type { PathQuality, Policy, Uplink, UplinkState } from "#shared";
import { cadenceOf, failbackAfterMs, heardUntil } from "./cadence.ts";
import {
  prunedWitnesses,
  testify,
  witnessSilenceMs,
  witnessesAgainst,
  type Testimony,
  type Witnesses,
} from "./witness.ts";

export interface UplinkRuntime {
  /** Last valid heartbeat that travelled through this uplink (or the grace start after a restart). */
  lastHeardAt: number | null;
  state: UplinkState;
  stateSince: number;
  /** Start of the current continuous "up" period (or of its recovery from degraded): failback waits on it. */
  upSince: number | null;
  /** Up, but lossy or slow by its probe's last minute (absent in states stored before: not degraded). */
  degraded?: boolean;
  /** When a probe last reported this uplink's path (or it came back from a silence). */
  pathAt?: number;
}

export interface Override {
  uplink: string;
  until: number;
  reason: string;
}

export interface DecisionState {
  /** Judging starts here: an uplink never heard from is only judged after a full downAfterMs. */
  observedSince: number;
  uplinks: Record<string, UplinkRuntime>;
  active: string | null;
  generation: number;
  lastSwitchAt: number | null;
  override: Override | null;
  /** Witness reports, in memory only (absent in states stored before, dropped by a restart). */
  witnesses?: Witnesses;
}

export interface SiteShape {
  uplinks: readonly Uplink[];
  policy: Policy;
}

export type DecisionEvent =
  | { kind: "heartbeat"; uplink: string; path?: PathQuality | null; witness?: Testimony | null }
  | { kind: "tick" }
  | { kind: "override-set"; override: Override }
  | { kind: "override-cleared" };

export type SwitchReason = "initial" | "failover" | "failback" | "degraded" | "override";

export type Effect =
  | { kind: "switch"; from: string | null; to: string; generation: number; reason: SwitchReason }
  /** `witnesses`: down before downAfterMs, on these server agents' reports. */
  | { kind: "uplink-state"; uplink: string; from: UplinkState; to: UplinkState; witnesses?: string[] }
  /** `path` null: no probe has renewed the verdict for PATH_REPORT_STALE_MS, so it lapsed. */
  | { kind: "uplink-quality"; uplink: string; degraded: boolean; path: PathQuality | null }
  | { kind: "override-ended"; uplink: string; expired: boolean };

export interface Step {
  state: DecisionState;
  effects: Effect[];
}

/** Uplink `id`'s runtime, own keys only: "constructor" is a valid uplink id, and a member of every object. */
export function runtimeOf(uplinks: Record<string, UplinkRuntime>, id: string): UplinkRuntime | undefined {
  return Object.hasOwn(uplinks, id) ? uplinks[id] : undefined;
}

export function initialState(shape: SiteShape, now: number): DecisionState {
  const uplinks: Record<string, UplinkRuntime> = {};
  for (const u of shape.uplinks)
    uplinks[u.id] = { lastHeardAt: null, state: "unknown", stateSince: now, upSince: null };
  return { observedSince: now, uplinks, active: null, generation: 0, lastSwitchAt: null, override: null };
}

/**
 * State after a restart or eviction: every uplink that was up gets a full downAfterMs of grace
 * (as if heard just now), so a restart never causes a switch by itself, and a degraded verdict a
 * full PATH_REPORT_STALE_MS for its probe to renew it. The others keep when they were last heard:
 * the status still says how long they have been silent.
 */
export function restoredState(saved: DecisionState, shape: SiteShape, now: number): DecisionState {
  const uplinks: Record<string, UplinkRuntime> = {};
  for (const u of shape.uplinks) {
    const s = runtimeOf(saved.uplinks, u.id);
    uplinks[u.id] = s
      ? { ...s, lastHeardAt: s.state === "up" ? now : s.lastHeardAt, ...(s.degraded ? { pathAt: now } : {}) }
      : { lastHeardAt: null, state: "unknown", stateSince: now, upSince: null };
  }
  return { ...saved, observedSince: now, uplinks, witnesses: undefined };
}

/** Keeps runtime of uplinks that stay, adds new ones as never heard, drops removed ones. */
export function reshapedState(state: DecisionState, shape: SiteShape, now: number): DecisionState {
  const uplinks: Record<string, UplinkRuntime> = {};
  for (const u of shape.uplinks)
    uplinks[u.id] = runtimeOf(state.uplinks, u.id) ?? {
      lastHeardAt: null,
      state: "unknown",
      stateSince: now,
      upSince: null,
    };
  const override = state.override && runtimeOf(uplinks, state.override.uplink) ? state.override : null;
  const witnesses = state.witnesses && prunedWitnesses(state.witnesses, new Set(shape.uplinks.map((u) => u.id)));
  return { ...state, uplinks, override, witnesses, observedSince: Math.min(state.observedSince, now) };
}

/** Judgements on fewer handshakes than this keep the previous verdict: a probe just started. */
const MIN_PATH_SAMPLES = 20;
/** A probe's report covers its last minute: a verdict not renewed for as long has lapsed. */
export const PATH_REPORT_STALE_MS = 60_000;

/**
 * Degraded once over either threshold; healthy again only well under both (half the loss, 80 % of
 * the latency), so a path hovering at a threshold does not flap.
 */
export function degradedBy(path: PathQuality, was: boolean, policy: Policy): boolean {
  if (path.samples < MIN_PATH_SAMPLES) return was;
  const slow = (limit: number) => path.rttMs !== null && path.rttMs >= limit;
  return was
    ? path.lossRatio >= policy.degradedLossRatio / 2 || slow(0.8 * policy.degradedRttMs)
    : path.lossRatio >= policy.degradedLossRatio || slow(policy.degradedRttMs);
}

const healthy = (u: UplinkRuntime) => u.state === "up" && !u.degraded;

function byPriority(shape: SiteShape): Uplink[] {
  return [...shape.uplinks].sort((a, b) => a.priority - b.priority);
}

/** The uplink's own timings: a metered standby is heard slowly (cadence.ts). */
type Judged = { id: string; u: UplinkRuntime; s: DecisionState; shape: SiteShape };
const judged = (id: string, s: DecisionState, shape: SiteShape): Judged => ({ id, u: s.uplinks[id]!, s, shape });
const cadence = (j: Judged) => cadenceOf(j.shape, j.id, j.s.active);

function isFresh({ id, u, s, shape }: Judged, now: number): boolean {
  return u.lastHeardAt !== null && now < heardUntil(shape, id, u.lastHeardAt, s);
}

/**
 * Fit to take over from a failed uplink: heard within downAfterMs − heartbeatMs (at least one
 * heartbeat). When every uplink dies at once, the first to be judged down finds the others a
 * heartbeat behind it but already silent for that long: no failover into a dead uplink.
 */
function isLive(j: Judged, now: number): boolean {
  const { heartbeatMs, downAfterMs } = cadence(j);
  return j.u.lastHeardAt !== null && now - j.u.lastHeardAt < Math.max(heartbeatMs, downAfterMs - heartbeatMs);
}

/**
 * Heard within two heartbeats (one missed at most): fit to be returned to. An uplink that has just
 * died again is still "up" for downAfterMs; a return into that silence is a switch owed back at
 * once (found by the soak: a primary flapping 5 s down, 3 s up).
 */
function answering(j: Judged, now: number): boolean {
  return j.u.lastHeardAt !== null && now - j.u.lastHeardAt < 2 * cadence(j).heartbeatMs;
}

/** Never heard since judging started, and judging has not run a full downAfterMs yet. */
function isPending(j: Judged, now: number): boolean {
  return j.u.lastHeardAt === null && now < j.s.observedSince + cadence(j).downAfterMs;
}

/**
 * Heard since judging (re)started, or judging has run a full downAfterMs: after a restart the
 * stored "up" is only a grace assumption, and a failback must not act on it alone.
 */
function confirmed(j: Judged, now: number): boolean {
  return (j.u.lastHeardAt ?? 0) > j.s.observedSince || now >= j.s.observedSince + cadence(j).downAfterMs;
}

function judge(s: DecisionState, shape: SiteShape, now: number, effects: Effect[]): DecisionState {
  const { policy } = shape;
  const anyFresh = shape.uplinks.some((u) => isFresh(judged(u.id, s, shape), now));
  const healthyNow = (id: string) => {
    const v = runtimeOf(s.uplinks, id);
    return !!v && healthy(v) && answering(judged(id, s, shape), now);
  };
  const uplinks: Record<string, UplinkRuntime> = {};
  for (const { id } of shape.uplinks) {
    const u = s.uplinks[id]!;
    const j = judged(id, s, shape);
    // Silent for one of its own heartbeats and a margin: a metered standby is heard slowly.
    const silence = witnessSilenceMs({ ...policy, heartbeatMs: cadence(j).heartbeatMs });
    const silent = u.lastHeardAt === null || now - u.lastHeardAt >= silence;
    const witnesses = u.state === "up" && silent ? witnessesAgainst(s.witnesses, id, healthyNow, policy, now) : null;
    // Taken down by witnesses while still within downAfterMs: down until heard again.
    const heardSinceDown = u.state !== "down" || (u.lastHeardAt ?? -Infinity) >= u.stateSince;
    let next: UplinkState;
    if (witnesses) next = "down";
    else if (isFresh(j, now) && heardSinceDown) next = "up";
    else if (isPending(j, now)) next = u.state;
    // Silent while another uplink speaks: this one is broken. Everyone silent: we cannot tell.
    else next = anyFresh ? "down" : "unknown";
    if (next === u.state) {
      uplinks[id] = u;
      continue;
    }
    effects.push({ kind: "uplink-state", uplink: id, from: u.state, to: next, ...(witnesses ? { witnesses } : {}) });
    uplinks[id] = {
      ...u,
      state: next,
      stateSince: now,
      upSince: next === "up" ? (u.lastHeardAt ?? now) : null,
    };
  }
  return { ...s, uplinks };
}

function target(s: DecisionState, shape: SiteShape, now: number): { to: string; reason: SwitchReason } | null {
  const { policy } = shape;
  if (s.override) return s.override.uplink === s.active ? null : { to: s.override.uplink, reason: "override" };
  const ranked = byPriority(shape);
  // The best healthy uplink; when every one that is up is degraded, the best of those.
  const best = ranked.find((u) => healthy(s.uplinks[u.id]!)) ?? ranked.find((u) => s.uplinks[u.id]!.state === "up");
  if (!best) return null;
  if (s.active === null || !runtimeOf(s.uplinks, s.active)) {
    // First choice: wait while a better uplink is still within its first grace period.
    const betterPending = ranked.slice(0, ranked.indexOf(best)).some((u) => isPending(judged(u.id, s, shape), now));
    return betterPending ? null : { to: best.id, reason: s.active === null ? "initial" : "failover" };
  }
  const active = s.uplinks[s.active]!;
  // Really heard lately, not just granted grace by a restart: a restart must not conjure a live backup.
  const fitToTakeOver = (id: string) =>
    s.uplinks[id]!.state === "up" && isLive(judged(id, s, shape), now) && confirmed(judged(id, s, shape), now);
  if (active.state === "down") {
    const candidates = ranked.filter((u) => u.id !== s.active && fitToTakeOver(u.id));
    const live = candidates.find((u) => !s.uplinks[u.id]!.degraded) ?? candidates[0];
    return live ? { to: live.id, reason: "failover" } : null;
  }
  if (active.state !== "up" || best.id === s.active) return null;
  const activePriority = shape.uplinks.find((u) => u.id === s.active)!.priority;
  const dwelt = s.lastSwitchAt === null || now - s.lastSwitchAt >= policy.minDwellMs;
  const held = (id: string) =>
    now - s.uplinks[id]!.upSince! >= failbackAfterMs(shape, s.active) &&
    confirmed(judged(id, s, shape), now) &&
    answering(judged(id, s, shape), now);
  if (active.degraded && !s.uplinks[best.id]!.degraded) {
    // Away from a degraded uplink: to a lower-priority healthy one at once (after the dwell), to a
    // better one only once it has been healthy for the hold-down, like any return.
    const to = ranked.find(
      (u) =>
        u.id !== s.active &&
        fitToTakeOver(u.id) &&
        !s.uplinks[u.id]!.degraded &&
        (u.priority > activePriority || held(u.id)),
    );
    return to && dwelt ? { to: to.id, reason: "degraded" } : null;
  }
  // A return is to a healthy uplink only: when every up uplink is degraded, nothing moves.
  if (best.priority >= activePriority || s.uplinks[best.id]!.degraded) return null;
  return held(best.id) && dwelt ? { to: best.id, reason: "failback" } : null;
}

export function step(state: DecisionState, event: DecisionEvent, now: number, shape: SiteShape): Step {
  const effects: Effect[] = [];
  let s = state;
  switch (event.kind) {
    case "heartbeat": {
      const u = runtimeOf(s.uplinks, event.uplink);
      if (!u) break;
      const was = !!u.degraded;
      // Back from a silence, a verdict gets a full PATH_REPORT_STALE_MS for its probe to renew it:
      // the outage is no sign that the probe died.
      const pathAt = event.path || u.state !== "up" ? now : u.pathAt;
      // A verdict its probe no longer renews (the SBC died, say) lapses: the uplink is judged by
      // its heartbeats alone, and the site is not kept from its primary for ever.
      const degraded = event.path
        ? degradedBy(event.path, was, shape.policy)
        : was && pathAt !== undefined && now - pathAt < PATH_REPORT_STALE_MS;
      if (degraded !== was)
        effects.push({ kind: "uplink-quality", uplink: event.uplink, degraded, path: event.path ?? null });
      // A return to a recovered uplink waits out the same hold-down as a return to one that came back up.
      const upSince = was && !degraded && u.upSince !== null ? now : u.upSince;
      s = { ...s, uplinks: { ...s.uplinks, [event.uplink]: { ...u, lastHeardAt: now, degraded, upSince, pathAt } } };
      if (event.witness) {
        const ids = new Set(shape.uplinks.map((x) => x.id));
        s = { ...s, witnesses: testify(s.witnesses ?? {}, event.witness, event.uplink, ids, now) };
      }
      break;
    }
    case "override-set":
      s = { ...s, override: event.override };
      break;
    case "override-cleared":
      if (s.override) effects.push({ kind: "override-ended", uplink: s.override.uplink, expired: false });
      s = { ...s, override: null };
      break;
    case "tick":
      break;
  }
  if (s.override && s.override.until <= now) {
    effects.push({ kind: "override-ended", uplink: s.override.uplink, expired: true });
    s = { ...s, override: null };
  }
  s = judge(s, shape, now, effects);
  const t = target(s, shape, now);
  if (t) {
    const generation = s.generation + 1;
    effects.push({ kind: "switch", from: s.active, to: t.to, generation, reason: t.reason });
    s = { ...s, active: t.to, generation, lastSwitchAt: now };
  }
  return { state: s, effects };
}

/** The earliest time at which, with no new message at all, the decision could change. */
export function nextDeadline(s: DecisionState, shape: SiteShape, now: number): number | null {
  const times: number[] = [];
  for (const { id } of shape.uplinks) {
    const j = judged(id, s, shape);
    if (j.u.lastHeardAt !== null && j.u.state === "up") times.push(heardUntil(shape, id, j.u.lastHeardAt, s));
    if (isPending(j, now)) times.push(s.observedSince + cadence(j).downAfterMs);
  }
  if (s.override) times.push(s.override.until);
  else if (s.active !== null && runtimeOf(s.uplinks, s.active)?.state === "up") {
    const activePriority = shape.uplinks.find((u) => u.id === s.active)!.priority;
    const better = byPriority(shape).find((u) => u.priority < activePriority && s.uplinks[u.id]!.state === "up");
    if (better) times.push(returnAt(s, better.id, shape, now));
  }
  const future = times.filter((t) => t > now);
  return future.length ? Math.min(...future) : null;
}

/** When a return to `id` (up, better than the active uplink) is due: its hold-down, the dwell, a restart's grace. */
function returnAt(s: DecisionState, id: string, shape: SiteShape, now: number): number {
  const { policy } = shape;
  const j = judged(id, s, shape);
  const u = j.u;
  const graceEnd = confirmed(j, now) ? 0 : s.observedSince + cadence(j).downAfterMs;
  return Math.max(u.upSince! + failbackAfterMs(shape, s.active), (s.lastSwitchAt ?? 0) + policy.minDwellMs, graceEnd);
}

/**
 * The uplink the policy picks with no override, and when the site is on it (`now` when it is; a
 * failback's time when it waits for one; null when it waits on heartbeats, not on time). Assumes
 * heartbeats keep arriving as they do.
 */
export function normalChoice(
  s: DecisionState,
  shape: SiteShape,
  now: number,
): { uplink: string | null; at: number | null } {
  const ranked = byPriority(shape);
  const best = ranked.find((u) => healthy(s.uplinks[u.id]!)) ?? ranked.find((u) => s.uplinks[u.id]!.state === "up");
  if (!best) return { uplink: null, at: null };
  if (best.id === s.active) return { uplink: best.id, at: now };
  const active = s.active === null ? undefined : runtimeOf(s.uplinks, s.active);
  const activePriority = shape.uplinks.find((u) => u.id === s.active)?.priority ?? Infinity;
  const failback = active?.state === "up" && best.priority < activePriority && healthy(s.uplinks[best.id]!);
  return { uplink: best.id, at: failback ? returnAt(s, best.id, shape, now) : null };
}

export function siteMode(s: DecisionState): "auto" | "override" | "offline" {
  if (!Object.values(s.uplinks).some((u) => u.state === "up")) return "offline";
  return s.override ? "override" : "auto";
}
