// After `agent install` starts the service: has the edge heard it? Read from the agent's own
// status file, so the answer is what the running agent saw.
import type { AgentConfig } from "../config/schema.ts";
import { readStatus } from "../state/files.ts";

/** After the first uplink is heard, how long the others get to be heard too before the line is printed. */
const OTHERS_GRACE_MS = 3_000;

/** `since`: when the service was (re)started; an older status file is the previous run's. */
export async function waitForEdge(
  config: AgentConfig,
  since: number,
  timeoutMs = 20_000,
  now = Date.now,
): Promise<{ heard: boolean; line: string }> {
  const deadline = now() + timeoutMs;
  let firstHeardAt: number | null = null;
  for (;;) {
    const s = readStatus(config.stateDir);
    if (s.ok && s.value.startedAt >= since) {
      if (s.value.refusal)
        return { heard: false, line: `the edge refuses this agent (${s.value.refusal.code}): ${s.value.refusal.fix}` };
      const heard = Object.entries(s.value.uplinks)
        .filter(([, u]) => u.lastContactAt !== null)
        .map(([id]) => id);
      const silent = config.uplinks.map((u) => u.id).filter((id) => !heard.includes(id));
      if (heard.length) firstHeardAt ??= now();
      // Each uplink's channel opens on its own: give the others a moment, so the line names them all.
      if (heard.length && (!silent.length || now() - firstHeardAt! >= OTHERS_GRACE_MS))
        return {
          heard: true,
          line: `the edge answers agent ${config.agent} through ${heard.join(", ")}${silent.length ? ` (not yet through ${silent.join(", ")})` : ""}: see \`wanwatch agent status\``,
        };
    }
    if (now() > deadline)
      return {
        heard: false,
        line: `no answer from the edge within ${timeoutMs / 1000} s: see \`wanwatch agent status\` and \`wanwatch doctor\``,
      };
    await new Promise((r) => setTimeout(r, 250));
  }
}
