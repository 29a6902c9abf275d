// `wanwatch site …`: the admin API, with the admin token from the environment (never a flag:
// flags end up in shell history and `ps`).
import { readFileSync } from "node:fs";
import { parse as parseYaml } from "yaml";
import {
  AgentId,
  ApiError,
  EnrolmentTokenRequest,
  EnrolmentTokenResponse,
  EnrollRequest,
  NotifyTestResponse,
  OverrideCleared,
  OverrideRequest,
  RotateRequest,
  RotateResponse,
  SiteConfig,
  SiteEvent,
  SiteId,
  SiteStatus,
  issueLines,
  type NotifyTestResult,
} from "#shared";
import { httpCall, type HttpResponse } from "../edge/http.ts";
import { withoutHttpAdvice } from "../edge/refusal.ts";
import { UsageError, UserError } from "../lib/errors.ts";
import { parseCommand, seeHelp, type CommandSpec, type Flag } from "./command.ts";
import { parseDuration } from "./duration.ts";
import { EDGE_EXAMPLE, edgeUrl } from "./edge-url.ts";
import { eventsTable, statusTable } from "./tables.ts";

const COMMON = {
  edge: { type: "string", value: "URL", help: `your edge's https:// URL, e.g. ${EDGE_EXAMPLE} (or WANWATCH_EDGE)` },
  site: { type: "string", value: "SITE", help: "the site's id (or WANWATCH_SITE)" },
  json: { type: "boolean", help: "print the edge's answer as JSON" },
} as const satisfies Record<string, Flag>;
const NOTES = ["The admin token comes from WANWATCH_ADMIN_TOKEN (never a flag: flags end up in shell history)."];
const AT = `--edge ${EDGE_EXAMPLE} --site office`;

const spec = (s: Omit<CommandSpec, "notes">): CommandSpec => ({ ...s, flags: { ...s.flags, ...COMMON }, notes: NOTES });

export const SITE_COMMANDS = {
  apply: spec({
    name: "site apply",
    summary: "create or replace the site's config (uplinks, policy, tunnels, notify), validated before it is sent",
    positionals: ["FILE"],
    flags: {},
    examples: [`wanwatch site apply site.yaml ${AT}`],
  }),
  enroll: spec({
    name: "site enroll",
    summary:
      "print the one-line install for an agent (a single-use token, valid 1 h); --secret enrols at once and prints its secret; --rotate gives an enrolled agent a new secret",
    flags: {
      id: { type: "string", value: "ID", help: "the agent's id, e.g. sbc1 or srv1" },
      role: {
        type: "string",
        value: "probe|server",
        help: "probe: an SBC behind one uplink; server: applies switches, sends through every uplink",
      },
      uplink: { type: "string", value: "UPLINK", help: "the uplink a probe sits behind" },
      "tunnel-restarter": { type: "boolean", help: "this server restarts the site's tunnel (cluster mode)" },
      valid: {
        type: "string",
        value: "DURATION",
        help: "how long the install line's token works, 1m to 7d (default 1h); it works once",
      },
      secret: {
        type: "boolean",
        help: "for scripts: enrol now and print the agent's secret (once) instead of an install line",
      },
      rotate: { type: "boolean", help: "a new secret for an enrolled agent; the old one works through --grace" },
      grace: {
        type: "string",
        value: "DURATION",
        help: "with --rotate: how long the old secret keeps working, e.g. 10m, 1d (default 1d)",
      },
    },
    examples: [
      `wanwatch site enroll --id sbc1 --role probe --uplink isp1 ${AT}`,
      `wanwatch site enroll --id srv1 --role server --tunnel-restarter --valid 4h ${AT}`,
      `wanwatch site enroll --id sbc2 --role probe --uplink isp2 --secret --json ${AT}`,
      `wanwatch site enroll --id sbc1 --rotate --grace 1h ${AT}`,
    ],
  }),
  revoke: spec({
    name: "site revoke",
    summary: "revoke an agent: its channels close and its messages are refused",
    flags: { id: { type: "string", value: "ID", help: "the agent's id" } },
    examples: [`wanwatch site revoke --id sbc1 ${AT}`],
  }),
  status: spec({
    name: "site status",
    summary: "the site now: uplinks, the active one, agents",
    flags: {},
    examples: [`wanwatch site status ${AT}`],
  }),
  events: spec({
    name: "site events",
    summary: "the site's timeline, newest first",
    flags: { limit: { type: "string", value: "N", help: "how many events, 1 to 1000 (default 50)" } },
    examples: [`wanwatch site events --limit 20 ${AT}`],
  }),
  override: spec({
    name: "site override",
    summary: "pin the site to an uplink for a while, or --clear the pin",
    flags: {
      uplink: { type: "string", value: "UPLINK", help: "the uplink to pin" },
      for: { type: "string", value: "DURATION", help: "how long, e.g. 90s, 30m, 2h (a bare number is seconds)" },
      reason: { type: "string", value: "TEXT", help: "why, for the timeline" },
      clear: { type: "boolean", help: "end the pin now" },
    },
    examples: [
      `wanwatch site override --uplink isp2 --for 2h --reason "fiber maintenance" ${AT}`,
      `wanwatch site override --clear ${AT}`,
    ],
  }),
  notify: spec({
    name: "site notify",
    summary:
      "send a test notification to every target of the site now: one line per target (kind and host), exit 1 if any failed",
    flags: { test: { type: "boolean", help: "send the test (required)" } },
    examples: [`wanwatch site notify --test ${AT}`],
  }),
} satisfies Record<string, CommandSpec>;

type SiteCommand = keyof typeof SITE_COMMANDS;
type Values = Record<string, string | boolean | string[] | undefined>;

interface Target {
  edge: URL;
  site: string;
  token: string;
}

function target(values: Values, env: NodeJS.ProcessEnv, cmd: CommandSpec): Target {
  const edge = (values.edge as string | undefined) ?? env.WANWATCH_EDGE;
  const site = (values.site as string | undefined) ?? env.WANWATCH_SITE;
  if (!edge) throw new UsageError(`--edge URL is required, e.g. --edge ${EDGE_EXAMPLE}: ${seeHelp(cmd)}`);
  if (!site) throw new UsageError(`--site SITE is required: ${seeHelp(cmd)}`);
  const url = edgeUrl(edge);
  const s = SiteId.safeParse(site);
  if (!s.success) throw new UsageError(`--site: ${s.error.issues[0]!.message}`);
  const token = env.WANWATCH_ADMIN_TOKEN;
  if (!token)
    throw new UsageError(
      "WANWATCH_ADMIN_TOKEN is not set: export the edge's admin token (it is never taken as a flag)",
    );
  return { edge: url, site, token };
}

/** What to do about an error the edge returned, in CLI commands. */
function hint(code: string, t: Target): string | null {
  switch (code) {
    case "agent_not_found":
      return `\`wanwatch site status --site ${t.site}\` lists the site's agents`;
    case "unauthorized":
    case "forbidden":
      return "check WANWATCH_ADMIN_TOKEN: it must be the edge's admin token";
    default:
      return null;
  }
}

async function call(t: Target, method: string, path: string, body?: unknown): Promise<unknown> {
  const url = new URL(`/v1/sites/${t.site}${path}`, t.edge);
  let res: HttpResponse;
  try {
    // node:http rather than fetch: Node 18 (Debian 12) warns that its fetch is experimental.
    res = await httpCall(url, {
      method,
      headers: {
        authorization: `Bearer ${t.token}`,
        ...(body === undefined ? {} : { "content-type": "application/json" }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
      timeoutMs: 15_000,
    });
  } catch (err) {
    const c = (err as { cause?: { code?: string; message?: string } }).cause;
    const cause = c?.code ?? c?.message ?? (err as Error).message;
    throw new UserError(`cannot reach the edge at ${t.edge.origin}${cause ? ` (${cause})` : ""}`, 1, { cause: err });
  }
  let json: unknown = null;
  try {
    json = JSON.parse(res.body);
  } catch {
    json = null;
  }
  if (res.status < 200 || res.status > 299) {
    const e = ApiError.safeParse(json);
    if (!e.success)
      throw new UserError(`the edge at ${t.edge.origin} answered HTTP ${res.status}: is it a wanwatch edge?`);
    const h = hint(e.data.error.code, t);
    const lines = [
      `site ${t.site}: ${h ? withoutHttpAdvice(e.data.error.message) : e.data.error.message} (${e.data.error.code})`,
      ...(e.data.error.issues ?? []).map((i) => `  ${i.path}: ${i.message}`),
      ...(h ? [`  ${h}`] : []),
    ];
    throw new UserError(lines[0]!, 1, { lines });
  }
  return json;
}

/** Client-side validation first: the same schema the edge uses, so mistakes show before any request. */
function validated<T>(
  schema: { safeParse(v: unknown): { success: true; data: T } | { success: false; error: import("zod").ZodError } },
  value: unknown,
  prefix = "",
): T {
  const r = schema.safeParse(value);
  if (!r.success) {
    const lines = issueLines(r.error).map((l) => prefix + l);
    throw new UserError(lines[0]!, 2, { lines });
  }
  return r.data;
}

function required(values: Values, flag: string, cmd: CommandSpec): string {
  const v = values[flag];
  if (typeof v !== "string" || v === "") throw new UsageError(`--${flag} is required: ${seeHelp(cmd)}`);
  return v;
}

function seconds(flag: string, text: string): number {
  const ms = parseDuration(text, "s");
  if (ms === null) throw new UsageError(`--${flag} ${text}: not a duration; write e.g. 90s, 30m, 2h`);
  return Math.round(ms / 1000);
}

function agentId(values: Values, cmd: CommandSpec): string {
  const id = required(values, "id", cmd);
  if (!AgentId.safeParse(id).success)
    throw new UsageError(`--id ${id}: an agent id is lower-case letters, digits and dashes, e.g. sbc1`);
  return id;
}

/** `site enroll --rotate`: a new secret; the old one works through the grace, so the agent can be updated without a gap. */
async function rotate(values: Values, env: NodeJS.ProcessEnv, out: (s: string) => void): Promise<number> {
  const cmd = SITE_COMMANDS.enroll;
  if (values.role || values.uplink || values["tunnel-restarter"])
    throw new UsageError("--rotate keeps the agent's role and uplink: omit --role, --uplink, --tunnel-restarter");
  const id = agentId(values, cmd);
  const req = validated(
    RotateRequest,
    values.grace === undefined ? {} : { graceSeconds: seconds("grace", values.grace as string) },
    "--grace: ",
  );
  const t = target(values, env, cmd);
  const r = validated(RotateResponse, await call(t, "POST", `/agents/${id}/rotate`, req));
  if (values.json) out(JSON.stringify(r, null, 2));
  else
    out(
      [
        `agent ${r.id} in site ${t.site}: new secret (shown once; on the agent's host, replace the secret file's content with it, then restart the agent: systemctl restart wanwatch):`,
        r.secret,
        r.previousValidUntil === null
          ? "the old secret is refused from now on."
          : `the old secret keeps working until ${new Date(r.previousValidUntil).toISOString()}, or until the agent first signs with the new one.`,
      ].join("\n"),
    );
  return 0;
}

/** The command to run on the agent's host: the secret goes in through stdin, never on the command line. */
function hostCommand(t: Target, id: string, role: string, uplink: string | undefined, siteUplinks: string[]): string {
  const uplinks = role === "probe" ? [`--uplink ${uplink}`] : siteUplinks.map((u) => `--uplink ${u}=IFACE`);
  return `wanwatch agent install --edge ${t.edge.origin} --site ${t.site} --agent ${id} --role ${role} ${uplinks.join(" ")} --secret-stdin`;
}

const SERVER_NOTE =
  "  add --switch nmcli|iproute2 and --tunnel … as that server needs: `wanwatch agent install --help`";

/** `site enroll --secret`: enrolled now; the secret is printed once, for scripts that place it themselves. */
async function enrollWithSecret(t: Target, req: EnrollRequest, json: boolean, out: (s: string) => void) {
  const r = (await call(t, "POST", "/agents", req)) as { id: string; secret: string };
  if (json) return out(JSON.stringify(r, null, 2));
  const site = req.role === "server" ? validated(SiteConfig, await call(t, "GET", "")) : null;
  out(
    [
      `agent ${r.id} enrolled in site ${t.site} as ${req.role}${req.uplink ? ` behind ${req.uplink}` : ""}.`,
      "secret (shown once; keep it only until the agent's host has it):",
      r.secret,
      `on that host, as root${req.role === "server" ? ", naming each uplink's interface" : ""} (the secret is read from standard input: paste it, then Enter and Ctrl-D):`,
      `  ${hostCommand(t, r.id, req.role, req.uplink, site?.uplinks.map((u) => u.id) ?? [])}`,
      ...(req.role === "server" ? [SERVER_NOTE] : []),
    ].join("\n"),
  );
}

/** The one-line install: a single-use token, redeemed by the agent's host for its secret. */
function installLine(r: EnrolmentTokenResponse, t: Target): string {
  const uplinks = r.role === "server" ? r.uplinks.map((u) => ` --uplink ${u}=IFACE`).join("") : "";
  return `curl -fsSL ${t.edge.origin}/install.sh | sudo sh -s -- ${r.token}${uplinks}`;
}

async function enroll(values: Values, env: NodeJS.ProcessEnv, out: (s: string) => void): Promise<number> {
  const cmd = SITE_COMMANDS.enroll;
  if (values.rotate) return rotate(values, env, out);
  if (values.grace !== undefined) throw new UsageError(`--grace goes with --rotate: ${seeHelp(cmd)}`);
  if (values.secret && values.valid !== undefined)
    throw new UsageError("--valid is the install line's: --secret prints no line (omit one of them)");
  const placement = {
    id: required(values, "id", cmd),
    role: required(values, "role", cmd),
    ...(values.uplink ? { uplink: values.uplink } : {}),
    ...(values["tunnel-restarter"] ? { tunnelRestarter: true } : {}),
  };
  if (values.secret) {
    const req = validated(EnrollRequest, placement);
    await enrollWithSecret(target(values, env, cmd), req, Boolean(values.json), out);
    return 0;
  }
  const req = validated(
    EnrolmentTokenRequest,
    { ...placement, ...(values.valid === undefined ? {} : { ttlSeconds: seconds("valid", values.valid as string) }) },
    values.valid === undefined ? "" : "--valid: ",
  );
  const t = target(values, env, cmd);
  const r = validated(EnrolmentTokenResponse, await call(t, "POST", "/enrolment-tokens", req));
  if (values.json) {
    out(JSON.stringify(r, null, 2));
    return 0;
  }
  const minutes = Math.round((r.expiresAt - Date.now()) / 60_000);
  out(
    [
      `install line for agent ${r.agent} (${r.role}${r.uplink ? ` behind ${r.uplink}` : ""}) in site ${t.site}: works once, until ${new Date(r.expiresAt).toISOString()} (${minutes % 60 ? `${minutes} min` : `${minutes / 60} h`}).`,
      `on that host${r.role === "server" ? ", naming each uplink's interface" : ""}:`,
      `  ${installLine(r, t)}`,
      ...(r.role === "server" ? [SERVER_NOTE] : []),
      "the agent is enrolled when that host redeems the token; a new line for the same agent replaces this one.",
    ].join("\n"),
  );
  return 0;
}

async function readSiteFile(file: string): Promise<unknown> {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new UserError(
      `cannot read ${file}: ${code === "ENOENT" ? "no such file" : (code ?? (err as Error).message)}`,
      2,
      { cause: err },
    );
  }
  if (!text.trim())
    throw new UserError(
      `${file} is empty: write the site's config in it (YAML or JSON; see \`wanwatch site apply --help\`)`,
      2,
    );
  try {
    return parseYaml(text);
  } catch (err) {
    throw new UserError(`${file}: not valid YAML or JSON: ${(err as Error).message.split("\n")[0]}`, 2, { cause: err });
  }
}

export async function siteCommand(
  sub: SiteCommand,
  args: string[],
  env: NodeJS.ProcessEnv,
  out: (s: string) => void,
): Promise<number> {
  const cmd: CommandSpec = SITE_COMMANDS[sub];
  const { values, positionals } = parseCommand(cmd, args);
  switch (sub) {
    case "apply": {
      const file = positionals[0];
      if (!file) throw new UsageError(`FILE is required: ${seeHelp(cmd)}`);
      const t = target(values, env, cmd);
      const doc = await readSiteFile(file);
      validated(SiteConfig, doc, `${file}: `);
      const saved = validated(SiteConfig, await call(t, "PUT", "", doc));
      out(
        values.json
          ? JSON.stringify(saved, null, 2)
          : `site ${t.site}: config applied (${saved.uplinks.map((x) => `${x.id} p${x.priority}`).join(", ")}; heartbeat ${saved.policy.heartbeatMs} ms, down after ${saved.policy.downAfterMs} ms, tunnels ${saved.tunnels.restart})`,
      );
      return 0;
    }
    case "enroll":
      return enroll(values, env, out);
    case "revoke": {
      const id = agentId(values, cmd);
      const t = target(values, env, cmd);
      await call(t, "DELETE", `/agents/${id}`);
      out(`agent ${id} revoked in site ${t.site}: its channels close and its messages are refused`);
      return 0;
    }
    case "status": {
      const t = target(values, env, cmd);
      const s = validated(SiteStatus, await call(t, "GET", "/status"));
      out(values.json ? JSON.stringify(s, null, 2) : statusTable(s));
      return 0;
    }
    case "events": {
      const limit = values.limit === undefined ? 50 : Number(values.limit);
      if (!Number.isInteger(limit) || limit < 1 || limit > 1000)
        throw new UsageError(`--limit: must be a whole number from 1 to 1000`);
      const t = target(values, env, cmd);
      const evs = validated(SiteEvent.array(), await call(t, "GET", `/events?limit=${limit}`));
      out(values.json ? JSON.stringify(evs, null, 2) : eventsTable(evs));
      return 0;
    }
    case "override": {
      if (values.clear) {
        if (values.uplink || values.for || values.reason)
          throw new UsageError("--clear takes no --uplink, --for or --reason");
        const t = target(values, env, cmd);
        const s = validated(OverrideCleared, await call(t, "DELETE", "/override"));
        out(
          values.json
            ? JSON.stringify(s, null, 2)
            : `site ${t.site}: override cleared; ${s.normalChoice.message} (generation ${s.generation})`,
        );
        return 0;
      }
      const forSeconds = seconds("for", required(values, "for", cmd));
      const req = validated(OverrideRequest, {
        uplink: required(values, "uplink", cmd),
        forSeconds,
        reason: required(values, "reason", cmd),
      });
      const t = target(values, env, cmd);
      const s = validated(SiteStatus, await call(t, "POST", "/override", req));
      out(
        values.json
          ? JSON.stringify(s, null, 2)
          : `site ${t.site}: ${req.uplink} pinned for ${req.forSeconds} s (${req.reason}); active uplink ${s.activeUplink ?? "none"}, generation ${s.generation}`,
      );
      return 0;
    }
    case "notify": {
      if (!values.test)
        throw new UsageError(
          `--test is required: it sends a test notification to every target of the site now: ${seeHelp(cmd)}`,
        );
      const t = target(values, env, cmd);
      const r = validated(NotifyTestResponse, await call(t, "POST", "/notify/test"));
      out(values.json ? JSON.stringify(r, null, 2) : r.results.map(notifyLine).join("\n"));
      return r.results.every((x) => x.ok) ? 0 : 1;
    }
  }
}

/** A target named by kind and host only: a webhook URL may hold a secret. */
const notifyLine = (r: NotifyTestResult) =>
  `${r.ok ? "✓" : "✗"} ${r.target}: ${r.ok ? `delivered (HTTP ${r.status})` : r.error} in ${r.ms} ms`;
