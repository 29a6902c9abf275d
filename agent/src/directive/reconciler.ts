// What a server agent does about directives, as a pure function:
// (state, event, now) → (state, effects). The adapter performs the effects and feeds back results.
import type { Directive } from "#shared";

/** Where the host's default routes lead now: IPv4's uplink, IPv6's, and which uplinks have IPv6 at all. */
export interface RoutedUplinks {
  ipv4: string | null;
  ipv6: string | null;
  withIpv6: string[];
}

/** The routes left the directive: IPv4 elsewhere, or IPv6 elsewhere while the active uplink has IPv6. */
export const drifted = (r: RoutedUplinks, active: string) =>
  r.ipv4 !== active || (r.withIpv6.includes(active) && r.ipv6 !== active);

export interface ReconcilerState {
  /** The newest directive heard from any channel. */
  directive: Directive | null;
  appliedGeneration: number | null;
  tunnelGeneration: number | null;
  lastError: string | null;
  /** The operation being performed now; one at a time. */
  busy: { op: "apply" | "restart-tunnels"; generation: number } | null;
  /** Failed attempts at the current operation, for the backoff. */
  failures: number;
  /** No new attempt before this time (after a failure). */
  retryAt: number | null;
  /**
   * The host's routes left the applied directive (a DHCP renewal, a profile brought up, a hand
   * edit): since when, and which uplink they led to. Cleared when a re-apply puts them back.
   */
  drift: { since: number; routed: RoutedUplinks } | null;
}

export type ReconcilerEvent =
  | { kind: "directive"; directive: Directive }
  | { kind: "applied"; generation: number }
  | { kind: "apply-failed"; generation: number; error: string }
  | { kind: "tunnels-restarted"; generation: number }
  | { kind: "tunnels-failed"; generation: number; error: string }
  /** The host's routes were read. */
  | { kind: "routes"; routed: RoutedUplinks }
  /** Time passed: a due retry may start. */
  | { kind: "tick" };

export type Effect =
  | { kind: "apply"; generation: number; activeUplink: string }
  | { kind: "restart-tunnels"; generation: number }
  /** Something a restart must not lose changed: write the state file. */
  | { kind: "persist" }
  /** Wake up (send a tick) at this time. */
  | { kind: "wake"; at: number }
  | { kind: "log"; level: "info" | "warn"; msg: string; fields: Record<string, unknown> }
  /** The routes drifted from the directive and a re-apply put them back: worth telling the edge. */
  | { kind: "drift-repaired"; at: number; routed: RoutedUplinks; activeUplink: string; repairedInMs: number };

export interface ReconcilerOptions {
  /** Delay before retry number `attempt` (0-based) of a failed operation. */
  retryDelay: (attempt: number) => number;
}

export function initialState(
  saved?: Partial<Pick<ReconcilerState, "directive" | "appliedGeneration" | "tunnelGeneration" | "lastError">>,
): ReconcilerState {
  return {
    directive: saved?.directive ?? null,
    appliedGeneration: saved?.appliedGeneration ?? null,
    tunnelGeneration: saved?.tunnelGeneration ?? null,
    lastError: saved?.lastError ?? null,
    busy: null,
    failures: 0,
    retryAt: null,
    drift: null,
  };
}

const behind = (done: number | null, generation: number) => done === null || done < generation;

/** Newest generation wins; within one generation the latest word counts (restartTunnels can turn on later). */
export function newer(current: Directive | null, next: Directive): boolean {
  if (!current) return true;
  if (next.generation !== current.generation) return next.generation > current.generation;
  return next.activeUplink !== current.activeUplink || next.restartTunnels !== current.restartTunnels;
}

export function step(
  state: ReconcilerState,
  event: ReconcilerEvent,
  now: number,
  opts: ReconcilerOptions,
): { state: ReconcilerState; effects: Effect[] } {
  const effects: Effect[] = [];
  let s = state;
  switch (event.kind) {
    case "directive":
      if (!newer(s.directive, event.directive)) break;
      if (!s.directive || event.directive.generation > s.directive.generation)
        effects.push({
          kind: "log",
          level: "info",
          msg: "new directive",
          fields: { ...event.directive, previous: s.directive?.generation ?? null },
        });
      // A newer generation supersedes a pending retry of an older one, and any drift: its apply sets the routes anew.
      s = {
        ...s,
        directive: event.directive,
        ...(s.directive && event.directive.generation > s.directive.generation
          ? { failures: 0, retryAt: null, drift: null }
          : {}),
      };
      effects.push({ kind: "persist" });
      break;
    case "applied":
      if (s.busy?.op !== "apply" || s.busy.generation !== event.generation) break;
      if (s.drift && s.directive) {
        const repaired = {
          at: s.drift.since,
          routed: s.drift.routed,
          activeUplink: s.directive.activeUplink,
          repairedInMs: now - s.drift.since,
        };
        effects.push(
          {
            kind: "log",
            level: "info",
            msg: "route drift repaired",
            fields: {
              at: repaired.at,
              routedUplink: repaired.routed.ipv4,
              routedUplink6: repaired.routed.ipv6,
              activeUplink: repaired.activeUplink,
              repairedInMs: repaired.repairedInMs,
            },
          },
          { kind: "drift-repaired", ...repaired },
        );
      } else
        effects.push({
          kind: "log",
          level: "info",
          msg: "directive applied",
          fields: { generation: event.generation },
        });
      s = {
        ...s,
        busy: null,
        failures: 0,
        retryAt: null,
        lastError: null,
        drift: null,
        appliedGeneration: Math.max(event.generation, s.appliedGeneration ?? -1),
      };
      effects.push({ kind: "persist" });
      break;
    case "routes": {
      // Level-triggered: only a host that holds the current directive can drift from it; while a
      // switch is under way or owed, the routes are expected to differ.
      const d = s.directive;
      if (
        !d ||
        s.busy ||
        behind(s.appliedGeneration, d.generation) ||
        s.drift ||
        !drifted(event.routed, d.activeUplink)
      )
        break;
      s = { ...s, drift: { since: now, routed: event.routed } };
      effects.push({
        kind: "log",
        level: "warn",
        msg: "route drift: the host's default route left the directive; re-applying",
        fields: {
          generation: d.generation,
          activeUplink: d.activeUplink,
          routedUplink: event.routed.ipv4,
          routedUplink6: event.routed.ipv6,
        },
      });
      break;
    }
    case "tunnels-restarted":
      if (s.busy?.op !== "restart-tunnels" || s.busy.generation !== event.generation) break;
      s = {
        ...s,
        busy: null,
        failures: 0,
        retryAt: null,
        lastError: null,
        tunnelGeneration: Math.max(event.generation, s.tunnelGeneration ?? -1),
      };
      effects.push(
        { kind: "log", level: "info", msg: "tunnels restarted", fields: { generation: event.generation } },
        { kind: "persist" },
      );
      break;
    case "apply-failed":
    case "tunnels-failed": {
      const op = event.kind === "apply-failed" ? "apply" : "restart-tunnels";
      if (s.busy?.op !== op || s.busy.generation !== event.generation) break;
      // A failure of a superseded generation does not delay the newer one.
      const superseded = (s.directive?.generation ?? -1) > event.generation;
      const delay = superseded ? 0 : opts.retryDelay(s.failures);
      s = {
        ...s,
        busy: null,
        failures: superseded ? 0 : s.failures + 1,
        retryAt: superseded ? null : now + delay,
        lastError: event.error,
      };
      effects.push(
        {
          kind: "log",
          level: "warn",
          msg: op === "apply" ? "applying the directive failed" : "restarting tunnels failed",
          fields: { generation: event.generation, error: event.error, retryInMs: delay },
        },
        { kind: "persist" },
      );
      if (!superseded) effects.push({ kind: "wake", at: now + delay });
      break;
    }
    case "tick":
      break;
  }
  return next(s, effects, now);
}

/** Starts the next operation the state calls for, if none is running and no retry is pending. */
function next(s: ReconcilerState, effects: Effect[], now: number): { state: ReconcilerState; effects: Effect[] } {
  const d = s.directive;
  if (!d || s.busy) return { state: s, effects };
  if (s.retryAt !== null && now < s.retryAt) return { state: s, effects };
  if (behind(s.appliedGeneration, d.generation) || s.drift) {
    return {
      state: { ...s, busy: { op: "apply", generation: d.generation } },
      effects: [...effects, { kind: "apply", generation: d.generation, activeUplink: d.activeUplink }],
    };
  }
  // Tunnels only after the routes are right: a tunnel restarted on the old route comes back on it.
  if (d.restartTunnels && behind(s.tunnelGeneration, d.generation)) {
    return {
      state: { ...s, busy: { op: "restart-tunnels", generation: d.generation } },
      effects: [...effects, { kind: "restart-tunnels", generation: d.generation }],
    };
  }
  return { state: s.retryAt === null ? s : { ...s, retryAt: null }, effects };
}
