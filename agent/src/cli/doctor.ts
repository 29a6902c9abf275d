// `wanwatch doctor`: one ✓/✗ line per check of what the agent needs on this host.
import { accessSync, constants, mkdirSync, statSync } from "node:fs";
import { networkInterfaces } from "node:os";
import { delimiter, join } from "node:path";
import { ConfigError, DEFAULT_CONFIG_PATH, loadConfig, readSecret, realHost } from "../config/load.ts";
import { SEE_REFERENCE } from "../config/reference.ts";
import type { AgentConfig } from "../config/schema.ts";
import { edgeAddressResolver, edgePort } from "../daemon/edge-address.ts";
import { EdgeClock } from "../edge/clock.ts";
import { EdgeSigner } from "../edge/signer.ts";
import { defaultRoutes, ipv6Address, routeGet } from "../host/ip.ts";
import { describeError } from "../lib/errors.ts";
import { parseCommand, type CommandSpec } from "./command.ts";
import { clockCheck, heartbeatCheck, type Check } from "./doctor-edge.ts";

export const DOCTOR: CommandSpec = {
  name: "doctor",
  summary:
    "check this host's agent setup: tools, interfaces, secret, and one signed heartbeat through each uplink; exit 1 on any ✗",
  flags: { config: { type: "string", value: "FILE", help: `the agent's config (default ${DEFAULT_CONFIG_PATH})` } },
  examples: ["wanwatch doctor", "wanwatch doctor --config /etc/wanwatch/agent.yaml"],
};

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
async function leavesThrough(
  config: AgentConfig,
  uplink: AgentConfig["uplinks"][number],
  source: string,
): Promise<string | null> {
  try {
    const edge = await edgeAddressResolver(config.edge)();
    const dev = (await routeGet(edge, { from: source, port: edgePort(config.edge) })).dev;
    return dev === uplink.interface
      ? null
      : `traffic from ${source} to the edge leaves through ${dev ?? "nowhere"}, not ${uplink.interface}: per-uplink routing is not installed (the agent installs it while it runs)`;
  } catch (err) {
    return describeError(err);
  }
}

/** The source address to send from through this uplink (servers), or a failed check. */
async function sourceFor(
  config: AgentConfig,
  uplink: AgentConfig["uplinks"][number],
): Promise<{ source: string | null } | { check: Check }> {
  // Probes have one uplink and use the default route; a server binds each uplink's address.
  if (config.role !== "server") return { source: null };
  const source = ipv4Of(uplink.interface);
  if (!source)
    return { check: { ok: false, text: `heartbeat through ${uplink.id}: ${uplink.interface} has no IPv4 address` } };
  const wrongWay = await leavesThrough(config, uplink, source);
  return wrongWay ? { check: { ok: false, text: `heartbeat through ${uplink.id}: ${wrongWay}` } } : { source };
}

/** Each uplink needs its own interface: the agent routes and switches by interface. */
function sharedInterfaces(config: AgentConfig): Check[] {
  const by = new Map<string, string[]>();
  for (const u of config.uplinks) by.set(u.interface, [...(by.get(u.interface) ?? []), u.id]);
  return [...by]
    .filter(([, ids]) => ids.length > 1)
    .map(([iface, ids]) => ({
      ok: false,
      text: `uplinks ${ids.join(" and ")} share interface ${iface}: each uplink needs its own interface`,
    }));
}

/**
 * Which uplinks carry IPv6 (a usable global address and a default route on the interface): the
 * agent moves IPv6 with IPv4 among those, and leaves IPv6 on the others' alone. Never a ✗: a host
 * with no IPv6, or with IPv6 on one uplink only, works; it is said so the owner knows what moves.
 */
export function ipv6Coverage(uplinks: readonly string[], withIpv6: readonly string[]): Check {
  const without = uplinks.filter((u) => !withIpv6.includes(u));
  if (!withIpv6.length) return { ok: true, text: "IPv6: on no uplink (IPv4 only)" };
  if (!without.length) return { ok: true, text: `IPv6 on ${withIpv6.join(" and ")}: it moves with IPv4` };
  return {
    ok: true,
    text: `IPv6 on ${withIpv6.join(" and ")} only (${without.join(" and ")} ${without.length > 1 ? "have" : "has"} no global IPv6 address and default route): while ${without.join(" or ")} is active, IPv6 keeps leaving through ${withIpv6.join(" or ")}`,
  };
}

async function ipv6Check(config: AgentConfig): Promise<Check> {
  try {
    const routes = await defaultRoutes("main", 6);
    const withIpv6: string[] = [];
    for (const u of config.uplinks)
      if (
        realHost.interfaceExists(u.interface) &&
        routes.some((r) => r.dev === u.interface) &&
        (await ipv6Address(u.interface))
      )
        withIpv6.push(u.id);
    return ipv6Coverage(
      config.uplinks.map((u) => u.id),
      withIpv6,
    );
  } catch (err) {
    return { ok: false, text: `IPv6: cannot read the host's addresses and routes: ${describeError(err)}` };
  }
}

async function edgeChecks(config: AgentConfig): Promise<Check[]> {
  const checks: Check[] = [];
  const sources: { uplink: string; source: string | null }[] = [];
  for (const u of config.uplinks) {
    const s = await sourceFor(config, u);
    if ("check" in s) checks.push(s.check);
    else sources.push({ uplink: u.id, source: s.source });
  }
  if (!sources.length) return checks;
  // The edge's time through the first uplink that answers; without any, local time (each uplink's
  // heartbeat then says why it got no answer).
  let clock: EdgeClock | null = null;
  let clockLine: Check | null = null;
  for (const { source } of sources) {
    const r = await clockCheck(config, source);
    clockLine ??= r.check;
    if ((clock = r.clock)) {
      clockLine = r.check;
      break;
    }
  }
  checks.push(clockLine!);
  let signer: EdgeSigner;
  try {
    signer = await EdgeSigner.fromSecret(config.site, config.agent, readSecret(config.secretFile));
  } catch (err) {
    return [...checks, { ok: false, text: `cannot sign a heartbeat: ${describeError(err)}` }];
  }
  for (const { uplink, source } of sources)
    checks.push(await heartbeatCheck(config, uplink, source, signer, clock ?? new EdgeClock()));
  return checks;
}

export async function runChecks(config: AgentConfig): Promise<Check[]> {
  const checks: Check[] = [];
  if (config.role === "server") {
    const ip = onPath("ip");
    checks.push(
      ip
        ? { ok: true, text: `ip found (${ip})` }
        : { ok: false, text: "ip not found: install iproute2 (per-uplink routing needs it)" },
    );
    if (config.switch.backend === "nmcli") {
      const nmcli = onPath("nmcli");
      checks.push(
        nmcli
          ? { ok: true, text: `nmcli found (${nmcli})` }
          : { ok: false, text: "nmcli not found: install NetworkManager or use switch.backend iproute2" },
      );
    }
  }
  checks.push(...sharedInterfaces(config));
  if (config.role === "server" && onPath("ip")) checks.push(await ipv6Check(config));
  for (const u of config.uplinks) {
    checks.push(
      realHost.interfaceExists(u.interface)
        ? { ok: true, text: `uplink ${u.id}: interface ${u.interface} exists` }
        : { ok: false, text: `uplink ${u.id}: interface ${u.interface} does not exist` },
    );
  }
  try {
    const st = statSync(config.secretFile);
    const mode = st.mode & 0o777;
    checks.push(
      (mode & 0o077) === 0
        ? { ok: true, text: `secret file ${config.secretFile}: mode ${mode.toString(8).padStart(4, "0")}` }
        : {
            ok: false,
            text: `secret file ${config.secretFile}: mode ${mode.toString(8).padStart(4, "0")}, should be 0600 (chmod 600 ${config.secretFile})`,
          },
    );
  } catch (err) {
    checks.push({
      ok: false,
      text: `secret file ${config.secretFile}: ${(err as NodeJS.ErrnoException).code === "ENOENT" ? "does not exist" : describeError(err)}`,
    });
  }
  try {
    mkdirSync(config.stateDir, { recursive: true, mode: 0o755 });
    accessSync(config.stateDir, constants.W_OK);
    checks.push({ ok: true, text: `state folder ${config.stateDir} is writable` });
  } catch (err) {
    checks.push({
      ok: false,
      text: `state folder ${config.stateDir}: ${(err as NodeJS.ErrnoException).code ?? describeError(err)} (the agent keeps its state there)`,
    });
  }
  return [...checks, ...(await edgeChecks(config))];
}

export async function doctor(args: string[], out: (s: string) => void): Promise<number> {
  const { values } = parseCommand(DOCTOR, args);
  const file = (values.config as string | undefined) ?? DEFAULT_CONFIG_PATH;
  let config: AgentConfig;
  const notes: string[] = [];
  try {
    config = loadConfig(file, { host: false, onDeprecated: (line) => notes.push(line) });
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    out(
      [`✗ config ${file}`, ...err.lines.map((l) => `  ${l}`), ...(err.fields ? [`  ${SEE_REFERENCE}`] : [])].join("\n"),
    );
    return 1;
  }
  const checks = [
    {
      ok: true,
      text: `config ${file}${notes.length ? ` (${notes.map((n) => n.slice(file.length + 2)).join("; ")})` : ""}`,
    },
    ...(await runChecks(config)),
  ];
  out(checks.map((c) => `${c.ok ? "✓" : "✗"} ${c.text}`).join("\n"));
  return checks.every((c) => c.ok) ? 0 : 1;
}
