// The doctor's checks against the edge itself: its clock, and one signed heartbeat per uplink, so
// a wrong secret, id, site or uplink shows as the edge's own refusal, not as a ✓ for reachability.
import type { AgentConfig } from "../config/schema.ts";
import { EdgeClock } from "../edge/clock.ts";
import { postHeartbeat } from "../edge/heartbeat-http.ts";
import { header, httpCall } from "../edge/http.ts";
import { refusalFix, withoutHttpAdvice } from "../edge/refusal.ts";
import type { EdgeSigner } from "../edge/signer.ts";
import { describeError } from "../lib/errors.ts";
import { readState, readStatus } from "../state/files.ts";
import { VERSION } from "../version.ts";
import { HEADER_AGENT, HEADER_NOW, type Heartbeat } from "#shared";

export interface Check {
  ok: boolean;
  text: string;
}

/** The agent corrects its clock to the edge's, but a host this far off has no working time sync. */
export const DOCTOR_MAX_SKEW_MS = 2_000;

/**
 * Edge time: every answer of the agent endpoints carries x-wanwatch-now, refusals included, so an
 * unsigned heartbeat (refused, no effect on the edge) tells it. Falls back to the HTTP Date header.
 * The clock it returns signs the heartbeats that follow, as the agent's own would.
 */
export async function clockCheck(
  config: AgentConfig,
  source: string | null,
): Promise<{ check: Check; clock: EdgeClock | null }> {
  const sentAt = Date.now();
  try {
    const res = await httpCall(new URL(`/v1/sites/${config.site}/heartbeat`, config.edge), {
      method: "POST",
      headers: { "content-type": "application/json", [HEADER_AGENT]: config.agent },
      body: "{}",
      localAddress: source ?? undefined,
      timeoutMs: 5_000,
    });
    const receivedAt = Date.now();
    const precise = Number(header(res.headers, HEADER_NOW));
    const date = Date.parse(header(res.headers, "date") ?? "");
    const edgeNow = Number.isFinite(precise) && precise > 0 ? precise : Number.isFinite(date) ? date + 500 : NaN;
    if (!Number.isFinite(edgeNow))
      return { check: { ok: false, text: "clock skew vs edge: the edge did not tell its time" }, clock: null };
    const clock = new EdgeClock();
    clock.observe(edgeNow, sentAt, receivedAt);
    const text = `clock skew vs edge: ${(clock.offset / 1000).toFixed(1)} s`;
    return {
      check:
        Math.abs(clock.offset) <= DOCTOR_MAX_SKEW_MS
          ? { ok: true, text }
          : {
              ok: false,
              text: `${text} (over ${DOCTOR_MAX_SKEW_MS / 1000} s: the agent corrects for it, but fix the host's time sync: timedatectl set-ntp true)`,
            },
      clock,
    };
  } catch (err) {
    return { check: { ok: false, text: `clock skew vs edge: ${describeError(err)}` }, clock: null };
  }
}

/** What the running agent would report (from its state files), so the doctor's heartbeat tells the edge nothing new. */
function heartbeatBody(config: AgentConfig, uplink: string): string {
  const state = readState(config.stateDir);
  const status = readStatus(config.stateDir);
  const server = config.role === "server";
  const hb: Heartbeat = {
    type: "heartbeat",
    seq: 0,
    uplink,
    version: VERSION,
    appliedGeneration: server && state.ok ? state.value.appliedGeneration : null,
    tunnelGeneration: server && state.ok ? state.value.tunnelGeneration : null,
    lastError: state.ok ? state.value.lastError : null,
    ...(server ? { routedUplink: status.ok ? status.value.routedUplink : null } : {}),
  };
  return JSON.stringify(hb);
}

export async function heartbeatCheck(
  config: AgentConfig,
  uplink: string,
  source: string | null,
  signer: EdgeSigner,
  clock: EdgeClock,
): Promise<Check> {
  const through = `heartbeat through ${uplink}${source ? ` (from ${source})` : ""}`;
  const r = await postHeartbeat({
    edge: config.edge,
    site: config.site,
    body: heartbeatBody(config, uplink),
    signer,
    clock,
    localAddress: source ?? undefined,
    timeoutMs: 5_000,
  });
  if (r.ok) return { ok: true, text: `${through}: accepted by the edge in ${r.rttMs} ms` };
  if (r.code === "unreachable") return { ok: false, text: `${through}: edge unreachable (${r.message})` };
  const fix = refusalFix(r, config);
  return {
    ok: false,
    text: `${through}: refused by the edge (${r.code}: ${fix ? withoutHttpAdvice(r.message) : r.message})${fix ? `; fix: ${fix}` : ""}`,
  };
}
