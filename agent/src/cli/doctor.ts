// `wanwatch doctor`: one ✓/✗ line per check of what the agent needs on this host.
import { accessSync, constants, mkdirSync, statSync } from "node:fs";
import { networkInterfaces } from "node:os";
import { delimiter, join } from "node:path";
import { ConfigError, DEFAULT_CONFIG_PATH, loadConfig, realHost } from "../config/load.ts";
import type { AgentConfig } from "../config/schema.ts";
import { edgeAddressResolver } from "../daemon/edge-address.ts";
import { header, httpCall } from "../edge/http.ts";
import { routeGet } from "../host/ip.ts";
import { describeError } from "../lib/errors.ts";
import { HEADER_AGENT, HEADER_NOW, MAX_SKEW_MS } from "../../../shared/src/index.ts";
import { parse } from "./args.ts";

export const DOCTOR_USAGE = "wanwatch doctor [--config F]";

export interface Check {
  ok: boolean;
  text: string;
}

function onPath(tool: string, path = process.env.PATH ?? ""): string | null {
  for (const dir of [...path.split(delimiter), "/usr/sbin", "/sbin", "/usr/bin", "/bin"]) {
    if (!dir) continue;
    try {
      accessSync(join(dir, tool), constants.X_OK);
      return join(dir, tool);
    } catch {
      // Not here.
    }
  }
  return null;
}

function ipv4Of(iface: string): string | null {
  return networkInterfaces()[iface]?.find((a) => a.family === "IPv4")?.address ?? null;
}

/**
 * A server reaches the edge through a backup uplink only by the agent's per-uplink policy routing
 * (installed while the agent runs): without it, traffic from the backup's address leaves through
 * the default route, and a ✓ would be a lie.
 */
async function leavesThrough(config: AgentConfig, uplink: AgentConfig["uplinks"][number], source: string): Promise<string | null> {
  try {
    const dev = (await routeGet(await edgeAddressResolver(config.edge)(), source)).dev;
    return dev === uplink.interface
      ? null
      : `traffic from ${source} to the edge leaves through ${dev ?? "nowhere"}, not ${uplink.interface}: per-uplink routing is not installed (the agent installs it while it runs)`;
  } catch (err) {
    return describeError(err);
  }
}

async function edgeThrough(config: AgentConfig, uplink: AgentConfig["uplinks"][number]): Promise<{ check: Check; source: string | null }> {
  // Probes have one uplink and use the default route; a server binds each uplink's address.
  const source = config.role === "server" ? ipv4Of(uplink.interface) : null;
  if (config.role === "server" && !source) return { check: { ok: false, text: `edge through ${uplink.id}: ${uplink.interface} has no IPv4 address` }, source };
  const wrongWay = source ? await leavesThrough(config, uplink, source) : null;
  if (wrongWay) return { check: { ok: false, text: `edge through ${uplink.id}: ${wrongWay}` }, source };
  const sentAt = Date.now();
  try {
    const res = await httpCall(new URL("/healthz", config.edge), { localAddress: source ?? undefined, timeoutMs: 5_000 });
    const ms = Date.now() - sentAt;
    const from = source ? ` (from ${source})` : "";
    return res.status === 200
      ? { check: { ok: true, text: `edge reachable through ${uplink.id}${from}: ${ms} ms` }, source }
      : { check: { ok: false, text: `edge through ${uplink.id}${from}: /healthz answered HTTP ${res.status}` }, source };
  } catch (err) {
    return { check: { ok: false, text: `edge through ${uplink.id}${source ? ` (from ${source})` : ""}: ${describeError(err)}` }, source };
  }
}

/**
 * Edge time: every answer of the agent endpoints carries x-wanwatch-now, refusals included, so an
 * unsigned heartbeat (refused, no effect on the edge) tells it. Falls back to the HTTP Date header.
 */
async function clockSkew(config: AgentConfig, source: string | null): Promise<Check> {
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
    if (!Number.isFinite(edgeNow)) return { ok: false, text: "clock skew vs edge: the edge did not tell its time" };
    const skew = Math.round(edgeNow - (sentAt + receivedAt) / 2);
    const text = `clock skew vs edge: ${(skew / 1000).toFixed(1)} s`;
    return Math.abs(skew) <= MAX_SKEW_MS ? { ok: true, text } : { ok: false, text: `${text} (over ${MAX_SKEW_MS / 1000} s: the agent corrects for it, but fix the host's time sync)` };
  } catch (err) {
    return { ok: false, text: `clock skew vs edge: ${describeError(err)}` };
  }
}

export async function runChecks(config: AgentConfig): Promise<Check[]> {
  const checks: Check[] = [];
  if (config.role === "server") {
    const ip = onPath("ip");
    checks.push(ip ? { ok: true, text: `ip found (${ip})` } : { ok: false, text: "ip not found: install iproute2 (per-uplink routing needs it)" });
    if (config.switch.backend === "nmcli") {
      const nmcli = onPath("nmcli");
      checks.push(nmcli ? { ok: true, text: `nmcli found (${nmcli})` } : { ok: false, text: "nmcli not found: install NetworkManager or use switch.backend iproute2" });
    }
  }
  for (const u of config.uplinks) {
    checks.push(realHost.interfaceExists(u.interface) ? { ok: true, text: `uplink ${u.id}: interface ${u.interface} exists` } : { ok: false, text: `uplink ${u.id}: interface ${u.interface} does not exist` });
  }
  try {
    const st = statSync(config.secretFile);
    const mode = st.mode & 0o777;
    checks.push(
      (mode & 0o077) === 0
        ? { ok: true, text: `secret file ${config.secretFile}: mode ${mode.toString(8).padStart(4, "0")}` }
        : { ok: false, text: `secret file ${config.secretFile}: mode ${mode.toString(8).padStart(4, "0")}, should be 0600 (chmod 600 ${config.secretFile})` },
    );
  } catch (err) {
    checks.push({ ok: false, text: `secret file ${config.secretFile}: ${(err as NodeJS.ErrnoException).code === "ENOENT" ? "does not exist" : describeError(err)}` });
  }
  try {
    mkdirSync(config.stateDir, { recursive: true, mode: 0o755 });
    accessSync(config.stateDir, constants.W_OK);
    checks.push({ ok: true, text: `state folder ${config.stateDir} is writable` });
  } catch (err) {
    checks.push({ ok: false, text: `state folder ${config.stateDir}: ${(err as NodeJS.ErrnoException).code ?? describeError(err)} (the agent keeps its state there)` });
  }
  let reachable: { source: string | null } | null = null;
  for (const u of config.uplinks) {
    const r = await edgeThrough(config, u);
    checks.push(r.check);
    if (r.check.ok && !reachable) reachable = r;
  }
  if (reachable) checks.push(await clockSkew(config, reachable.source));
  return checks;
}

export async function doctor(args: string[], out: (s: string) => void): Promise<number> {
  const { values } = parse(args, { config: { type: "string" } }, { usage: DOCTOR_USAGE });
  const file = values.config ?? DEFAULT_CONFIG_PATH;
  let config: AgentConfig;
  try {
    config = loadConfig(file, { host: false });
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    out([`✗ config ${file}`, ...err.lines.map((l) => `  ${l}`)].join("\n"));
    return 1;
  }
  const checks = [{ ok: true, text: `config ${file}` }, ...(await runChecks(config))];
  out(checks.map((c) => `${c.ok ? "✓" : "✗"} ${c.text}`).join("\n"));
  return checks.every((c) => c.ok) ? 0 : 1;
}
