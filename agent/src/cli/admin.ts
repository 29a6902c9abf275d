// `wanwatch site …`: the admin API, with the admin token from the environment (never a flag:
// flags end up in shell history and `ps`).
import { readFileSync } from "node:fs";
import { parse as parseYaml } from "yaml";
import { AgentId, ApiError, EnrollRequest, OverrideCleared, OverrideRequest, RotateRequest, RotateResponse, SiteConfig, SiteEvent, SiteId, SiteStatus, issueLines } from "../../../shared/src/index.ts";
import { UsageError, UserError } from "../lib/errors.ts";
import { parse, required } from "./args.ts";
import { NOTIFY_USAGE, notifyCommand } from "./notify.ts";
import { eventsTable, statusTable } from "./tables.ts";

const COMMON = "--edge URL --site S";
export const SITE_USAGE = [
  `wanwatch site apply FILE ${COMMON}`,
  `wanwatch site enroll --id ID --role probe|server [--uplink U] [--tunnel-restarter] ${COMMON}`,
  `wanwatch site enroll --id ID --rotate [--grace SECONDS] ${COMMON}`,
  `wanwatch site revoke --id ID ${COMMON}`,
  `wanwatch site status ${COMMON} [--json]`,
  `wanwatch site events [--limit N] ${COMMON} [--json]`,
  `wanwatch site override --uplink U --for SECONDS --reason TEXT ${COMMON}`,
  `wanwatch site override --clear ${COMMON}`,
  NOTIFY_USAGE,
  "  (WANWATCH_ADMIN_TOKEN from the environment; WANWATCH_EDGE / WANWATCH_SITE may replace the flags)",
].join("\n       ");

export const common = { edge: { type: "string" }, site: { type: "string" }, json: { type: "boolean" } } as const;

interface Target {
  edge: URL;
  site: string;
  token: string;
}

export function target(values: { edge?: string; site?: string }, env: NodeJS.ProcessEnv): Target {
  const edge = values.edge ?? env.WANWATCH_EDGE;
  const site = values.site ?? env.WANWATCH_SITE;
  if (!edge) throw new UsageError(`--edge URL is required\nusage: ${SITE_USAGE}`);
  if (!site) throw new UsageError(`--site S is required\nusage: ${SITE_USAGE}`);
  let url: URL;
  try {
    url = new URL(edge);
    if (!/^https?:$/.test(url.protocol)) throw new Error("not http(s)");
  } catch {
    throw new UsageError(`--edge: "${edge}" is not an http(s) URL`);
  }
  const s = SiteId.safeParse(site);
  if (!s.success) throw new UsageError(`--site: ${s.error.issues[0]!.message}`);
  const token = env.WANWATCH_ADMIN_TOKEN;
  if (!token) throw new UsageError("WANWATCH_ADMIN_TOKEN is not set: export the edge's admin token (it is never taken as a flag)");
  return { edge: url, site, token };
}

export async function call(t: Target, method: string, path: string, body?: unknown): Promise<unknown> {
  const url = new URL(`/v1/sites/${t.site}${path}`, t.edge);
  let res: Response;
  try {
    res = await fetch(url, {
      method,
      headers: { authorization: `Bearer ${t.token}`, ...(body === undefined ? {} : { "content-type": "application/json" }) },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(15_000),
    });
  } catch (err) {
    const c = (err as { cause?: { code?: string; message?: string } }).cause;
    const cause = c?.code ?? c?.message ?? (err as Error).message;
    throw new UserError(`cannot reach the edge at ${t.edge.origin}${cause ? ` (${cause})` : ""}`, 1, { cause: err });
  }
  const text = await res.text();
  let json: unknown = null;
  try {
    json = JSON.parse(text);
  } catch {
    json = null;
  }
  if (!res.ok) {
    const e = ApiError.safeParse(json);
    if (!e.success) throw new UserError(`${method} ${url.pathname}: HTTP ${res.status}`);
    const lines = [`${method} ${url.pathname}: ${e.data.error.message} (${res.status} ${e.data.error.code})`, ...(e.data.error.issues ?? []).map((i) => `  ${i.path}: ${i.message}`)];
    throw new UserError(lines[0]!, 1, { lines });
  }
  return json;
}

/** Client-side validation first: the same schema the edge uses, so mistakes show before any request. */
export function validated<T>(schema: { safeParse(v: unknown): { success: true; data: T } | { success: false; error: import("zod").ZodError } }, value: unknown, prefix = ""): T {
  const r = schema.safeParse(value);
  if (!r.success) {
    const lines = issueLines(r.error).map((l) => prefix + l);
    throw new UserError(lines[0]!, 2, { lines });
  }
  return r.data;
}

/** `site enroll --rotate`: a new secret; the old one works through the grace, so the agent can be updated without a gap. */
async function rotate(values: { id?: string; role?: string; uplink?: string; "tunnel-restarter"?: boolean; grace?: string; edge?: string; site?: string; json?: boolean }, env: NodeJS.ProcessEnv, out: (s: string) => void, u: string): Promise<number> {
  if (values.role || values.uplink || values["tunnel-restarter"]) throw new UsageError(`--rotate keeps the agent's role and uplink: omit --role, --uplink, --tunnel-restarter\nusage: ${u}`);
  const id = required(values.id, "--id", u);
  if (!AgentId.safeParse(id).success) throw new UsageError(`--id: must match [a-z0-9][a-z0-9-]{0,62}`);
  const req = validated(RotateRequest, values.grace === undefined ? {} : { graceSeconds: Number(values.grace) }, "--grace: ");
  const t = target(values, env);
  const r = validated(RotateResponse, await call(t, "POST", `/agents/${id}/rotate`, req));
  if (values.json) out(JSON.stringify(r, null, 2));
  else
    out(
      [
        `agent ${r.id} in site ${t.site}: new secret (shown once; put it in the agent's secretFile, mode 0600, then restart the agent):`,
        r.secret,
        r.previousValidUntil === null
          ? "the old secret is refused from now on."
          : `the old secret keeps working until ${new Date(r.previousValidUntil).toISOString()}, or until the agent first signs with the new one.`,
      ].join("\n"),
    );
  return 0;
}

export async function siteCommand(args: string[], env: NodeJS.ProcessEnv, out: (s: string) => void): Promise<number> {
  const [sub, ...rest] = args;
  switch (sub) {
    case "apply": {
      const u = `wanwatch site apply FILE ${COMMON}`;
      const { values, positionals } = parse(rest, common, { positionals: 1, usage: u });
      const file = required(positionals[0], "FILE", u);
      const t = target(values, env);
      let text: string;
      try {
        text = readFileSync(file, "utf8");
      } catch (err) {
        throw new UserError(`cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, 2, { cause: err });
      }
      let doc: unknown;
      try {
        doc = parseYaml(text);
      } catch (err) {
        throw new UserError(`${file}: not valid YAML or JSON: ${(err as Error).message.split("\n")[0]}`, 2, { cause: err });
      }
      validated(SiteConfig, doc, `${file}: `);
      const saved = validated(SiteConfig, await call(t, "PUT", "", doc));
      out(values.json ? JSON.stringify(saved, null, 2) : `site ${t.site}: config applied (${saved.uplinks.map((x) => `${x.id} p${x.priority}`).join(", ")}; heartbeat ${saved.policy.heartbeatMs} ms, down after ${saved.policy.downAfterMs} ms, tunnels ${saved.tunnels.restart})`);
      return 0;
    }
    case "enroll": {
      const u = `wanwatch site enroll --id ID --role probe|server [--uplink U] [--tunnel-restarter] | --id ID --rotate [--grace SECONDS] ${COMMON}`;
      const { values } = parse(
        rest,
        { ...common, id: { type: "string" }, role: { type: "string" }, uplink: { type: "string" }, "tunnel-restarter": { type: "boolean" }, rotate: { type: "boolean" }, grace: { type: "string" } },
        { usage: u },
      );
      if (values.rotate) return rotate(values, env, out, u);
      if (values.grace !== undefined) throw new UsageError(`--grace goes with --rotate\nusage: ${u}`);
      const req = validated(EnrollRequest, {
        id: required(values.id, "--id", u),
        role: required(values.role, "--role", u),
        ...(values.uplink ? { uplink: values.uplink } : {}),
        ...(values["tunnel-restarter"] ? { tunnelRestarter: true } : {}),
      });
      const t = target(values, env);
      const r = (await call(t, "POST", "/agents", req)) as { id: string; secret: string };
      if (values.json) out(JSON.stringify(r, null, 2));
      else
        out(
          [
            `agent ${r.id} enrolled in site ${t.site} as ${req.role}${req.uplink ? ` behind ${req.uplink}` : ""}.`,
            `secret (shown once; store it on the agent's host, mode 0600):`,
            r.secret,
            `on that host: WANWATCH_SECRET='${r.secret}' wanwatch agent install --edge ${t.edge.origin} --site ${t.site} --agent ${r.id} --role ${req.role}${req.uplink ? ` --uplink ${req.uplink}` : ""}`,
          ].join("\n"),
        );
      return 0;
    }
    case "revoke": {
      const u = `wanwatch site revoke --id ID ${COMMON}`;
      const { values } = parse(rest, { ...common, id: { type: "string" } }, { usage: u });
      const id = required(values.id, "--id", u);
      if (!AgentId.safeParse(id).success) throw new UsageError(`--id: must match [a-z0-9][a-z0-9-]{0,62}`);
      const t = target(values, env);
      await call(t, "DELETE", `/agents/${id}`);
      out(`agent ${id} revoked in site ${t.site}: its channels close and its messages are refused`);
      return 0;
    }
    case "status": {
      const { values } = parse(rest, common, { usage: `wanwatch site status ${COMMON}` });
      const t = target(values, env);
      const s = validated(SiteStatus, await call(t, "GET", "/status"));
      out(values.json ? JSON.stringify(s, null, 2) : statusTable(s));
      return 0;
    }
    case "events": {
      const u = `wanwatch site events [--limit N] ${COMMON}`;
      const { values } = parse(rest, { ...common, limit: { type: "string" } }, { usage: u });
      const limit = values.limit === undefined ? 50 : Number(values.limit);
      if (!Number.isInteger(limit) || limit < 1 || limit > 1000) throw new UsageError(`--limit: must be a whole number from 1 to 1000\nusage: ${u}`);
      const t = target(values, env);
      const evs = validated(SiteEvent.array(), await call(t, "GET", `/events?limit=${limit}`));
      out(values.json ? JSON.stringify(evs, null, 2) : eventsTable(evs));
      return 0;
    }
    case "override": {
      const u = `wanwatch site override --uplink U --for SECONDS --reason TEXT | --clear ${COMMON}`;
      const { values } = parse(rest, { ...common, uplink: { type: "string" }, for: { type: "string" }, reason: { type: "string" }, clear: { type: "boolean" } }, { usage: u });
      if (values.clear) {
        if (values.uplink || values.for || values.reason) throw new UsageError(`--clear takes no --uplink, --for or --reason\nusage: ${u}`);
        const t = target(values, env);
        const s = validated(OverrideCleared, await call(t, "DELETE", "/override"));
        out(values.json ? JSON.stringify(s, null, 2) : `site ${t.site}: override cleared; ${s.normalChoice.message} (generation ${s.generation})`);
        return 0;
      }
      const seconds = Number(required(values.for, "--for", u));
      const req = validated(OverrideRequest, { uplink: required(values.uplink, "--uplink", u), forSeconds: seconds, reason: required(values.reason, "--reason", u) });
      const t = target(values, env);
      const s = validated(SiteStatus, await call(t, "POST", "/override", req));
      out(values.json ? JSON.stringify(s, null, 2) : `site ${t.site}: ${req.uplink} pinned for ${req.forSeconds} s (${req.reason}); active uplink ${s.activeUplink ?? "none"}, generation ${s.generation}`);
      return 0;
    }
    case "notify":
      return notifyCommand(rest, env, out);
    case undefined:
      throw new UsageError(`a site command is required\nusage: ${SITE_USAGE}`);
    default:
      throw new UsageError(`unknown site command "${sub}"\nusage: ${SITE_USAGE}`);
  }
}
