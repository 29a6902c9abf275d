// `wanwatch site notify --test`: a test notification to every target of the site, now; one line
// per target (named by kind and host: a webhook URL may hold a secret), exit 1 if any failed.
import { NotifyTestResponse, type NotifyTestResult } from "../../../shared/src/index.ts";
import { UsageError } from "../lib/errors.ts";
import { call, common, target, validated } from "./admin.ts";
import { parse } from "./args.ts";

export const NOTIFY_USAGE = "wanwatch site notify --test --edge URL --site S [--json]";

const line = (r: NotifyTestResult) => `${r.ok ? "✓" : "✗"} ${r.target}: ${r.ok ? `delivered (HTTP ${r.status})` : r.error} in ${r.ms} ms`;

export async function notifyCommand(args: string[], env: NodeJS.ProcessEnv, out: (s: string) => void): Promise<number> {
  const { values } = parse(args, { ...common, test: { type: "boolean" } }, { usage: NOTIFY_USAGE });
  if (!values.test) throw new UsageError(`--test is required: it sends a test notification to every target of the site now\nusage: ${NOTIFY_USAGE}`);
  const t = target(values, env);
  const r = validated(NotifyTestResponse, await call(t, "POST", "/notify/test"));
  out(values.json ? JSON.stringify(r, null, 2) : r.results.map(line).join("\n"));
  return r.results.every((x) => x.ok) ? 0 : 1;
}
