// The edge refusing an agent's messages, and what the operator does about it. Refusals that name
// the agent's own setup (secret, id, site, uplink) do not go away by retrying: they get a fix.
import type { AgentConfig } from "../config/schema.ts";

export interface Refusal {
  code: string;
  message: string;
}

type Setup = Pick<AgentConfig, "agent" | "site" | "role" | "secretFile">;

/**
 * The fix for a refusal caused by this agent's setup; null for passing trouble: a rate limit, a
 * replay, or a stale timestamp (the refusal tells the edge's time, and the agent corrects for it).
 */
export function refusalFix(r: Refusal, c: Setup): string | null {
  const enroll = `wanwatch site enroll --id ${c.agent} --role ${c.role}${c.role === "probe" ? " --uplink UPLINK" : ""} --site ${c.site}`;
  switch (r.code) {
    case "bad_signature":
      return `the secret in ${c.secretFile} is not agent ${c.agent}'s: put the one \`wanwatch site enroll\` printed there, or issue a new one with \`wanwatch site enroll --id ${c.agent} --rotate --site ${c.site}\``;
    case "unknown_agent":
      return `agent ${c.agent} is not enrolled in site ${c.site} (or was revoked): check \`agent:\` in the config, or enrol it with \`${enroll}\``;
    case "site_not_found":
      return `this edge has no site ${c.site}: check \`site:\` in the config (\`wanwatch site status --site ${c.site}\` lists it once it exists), or create it with \`wanwatch site apply FILE --site ${c.site}\``;
    case "unknown_uplink":
    case "wrong_uplink":
    case "validation_failed":
      return `the config's uplinks[].id must be the site's uplink ids${c.role === "probe" ? " (a probe: the one it was enrolled behind)" : ""}: compare with \`wanwatch site status --site ${c.site}\``;
    default:
      return null;
  }
}

/** The edge's message without its raw-HTTP advice (`…: PUT /v1/sites/x first`): the CLI gives a command instead. */
export const withoutHttpAdvice = (message: string) => message.replace(/: (PUT|POST|GET|DELETE) \/v1\/\S*.*$/, "");

/** An enrolled agent whose id the edge no longer knows has been revoked: running on is pointless. */
export const isRevocation = (r: Refusal) => r.code === "unknown_agent";
