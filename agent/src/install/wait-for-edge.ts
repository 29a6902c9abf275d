// After `agent install` starts the service: has the edge heard it? Read from the agent's own
// status file, so the answer is what the running agent saw.
import type { AgentConfig } from "../config/schema.ts";
import { readStatus } from "../state/files.ts";

/** `since`: when the service was (re)started; an older status file is the previous run's. */
export async function waitForEdge(
  config: AgentConfig,
  since: number,
  timeoutMs = 20_000,
  now = Date.now,
): Promise<{ heard: boolean; line: string }> {
  const deadline = now() + timeoutMs;
  for (;;) {
    const s = readStatus(config.stateDir);
    if (s.ok && s.value.startedAt >= since) {
      if (s.value.refusal)
        return { heard: false, line: `the edge refuses this agent (${s.value.refusal.code}): ${s.value.refusal.fix}` };
      const heard = Object.entries(s.value.uplinks)
        .filter(([, u]) => u.lastContactAt !== null)
        .map(([id]) => id);
      if (heard.length)
        return {
          heard: true,
          line: `the edge answers agent ${config.agent} through ${heard.join(", ")}: see \`wanwatch agent status\``,
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
