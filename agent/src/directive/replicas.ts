// Pinned tunnel replicas (one per uplink, each bound to its uplink's source address): which replica
// to restart, and when. Pure: the edge's answers through each uplink and the restarts' outcomes go
// in, restarts come out; time comes with each event. A replica is restarted only when its own
// uplink comes back — a switch needs none, the replica on the live uplink is already connected.

export interface ReplicaState {
  /** When the edge last answered through this uplink (null: not since the agent started). */
  heardAt: number | null;
  /** How long the uplink had been silent when it came back, while a restart for it is owed. */
  owedAfterMs: number | null;
  running: boolean;
  /** The uplink came back again while a restart ran: one more is owed when it ends. */
  again: number | null;
  failures: number;
  /** A failed restart is retried on the first answer through the uplink from then on. */
  retryAt: number | null;
  /** When the last restart succeeded, and the last failure's error (cleared by a success). */
  restartedAt: number | null;
  lastError: string | null;
}

export interface ReplicasState {
  startedAt: number;
  uplinks: Readonly<Record<string, ReplicaState>>;
}

export type ReplicaEvent =
  /** The edge answered through `uplink`; `silenceMs`: the site's downAfterMs, how long a silence counts. */
  | { kind: "contact"; uplink: string; at: number; silenceMs: number }
  | { kind: "restarted"; uplink: string; at: number; error: string | null };

export type ReplicaEffect = {
  kind: "restart";
  uplink: string;
  /** How long the uplink had been silent before it came back. */
  silentMs: number;
  /** 0 for the first try, then one more per failure. */
  attempt: number;
};

export function initialReplicas(uplinks: readonly string[], startedAt: number): ReplicasState {
  const fresh: ReplicaState = {
    heardAt: null,
    owedAfterMs: null,
    running: false,
    again: null,
    failures: 0,
    retryAt: null,
    restartedAt: null,
    lastError: null,
  };
  return { startedAt, uplinks: Object.fromEntries(uplinks.map((u) => [u, fresh])) };
}

export function stepReplicas(
  s: ReplicasState,
  e: ReplicaEvent,
  retryDelay: (failures: number) => number,
): { state: ReplicasState; effects: ReplicaEffect[] } {
  const r = s.uplinks[e.uplink];
  if (!r) return { state: s, effects: [] };
  const put = (next: ReplicaState, effects: ReplicaEffect[] = []) => ({
    state: { ...s, uplinks: { ...s.uplinks, [e.uplink]: next } },
    effects,
  });

  if (e.kind === "restarted") {
    if (e.error === null)
      return put({
        ...r,
        running: false,
        owedAfterMs: r.again,
        again: null,
        failures: 0,
        retryAt: null,
        restartedAt: e.at,
        lastError: null,
      });
    const failures = r.failures + 1;
    return put({ ...r, running: false, failures, retryAt: e.at + retryDelay(failures), lastError: e.error });
  }

  // Came back: another uplink answered while this one had been silent longer than the site's
  // downAfterMs — the edge's own rule for "down". So the first uplink to answer after a silence
  // of every uplink (the edge unreachable) is not restarted: never every replica at once.
  const since = r.heardAt ?? s.startedAt;
  const silentMs = e.at - since;
  const othersSpoke = Object.entries(s.uplinks).some(
    ([id, o]) => id !== e.uplink && (o.heardAt ?? -1) > since + e.silenceMs,
  );
  let next: ReplicaState = { ...r, heardAt: e.at };
  if (othersSpoke)
    next = r.running ? { ...next, again: silentMs } : { ...next, owedAfterMs: silentMs, failures: 0, retryAt: null };
  // This answer shows the uplink's path works now: the replica can connect at once.
  if (next.owedAfterMs === null || next.running || (next.retryAt !== null && e.at < next.retryAt)) return put(next);
  return put({ ...next, running: true }, [
    { kind: "restart", uplink: e.uplink, silentMs: next.owedAfterMs, attempt: next.failures },
  ]);
}
