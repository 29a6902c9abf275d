// The line `agent install` ends with: read from the running agent's status file, naming every
// uplink the edge answered through (the others get a moment: each channel opens on its own).
import { expect, it } from "vitest";
import type { AgentConfig } from "../../agent/src/config/schema.ts";
import { writeStatus, type UplinkView } from "../../agent/src/state/files.ts";
import { waitForEdge } from "../../agent/src/install/wait-for-edge.ts";
import { tempDir } from "./support.ts";

const view = (lastContactAt: number | null): UplinkView => ({
  transport: lastContactAt ? "websocket" : null,
  lastContactAt,
  rttMs: null,
  error: null,
  localAddress: null,
});

function agent(): AgentConfig {
  return {
    agent: "srv1",
    stateDir: tempDir(),
    uplinks: [
      { id: "isp1", interface: "eth0" },
      { id: "isp2", interface: "eth1" },
    ],
  } as AgentConfig;
}

function status(config: AgentConfig, uplinks: Record<string, UplinkView>) {
  writeStatus(config.stateDir, {
    pid: 1,
    agent: "srv1",
    site: "office",
    role: "server",
    edge: "https://edge",
    startedAt: 1_000,
    updatedAt: 1_000,
    stoppedAt: null,
    clockOffsetMs: 0,
    directive: null,
    appliedGeneration: null,
    tunnelGeneration: null,
    lastError: null,
    routedUplink: null,
    uplinks,
  });
}

it("waits for the second uplink after the first is heard, and names both", async () => {
  const config = agent();
  status(config, { isp1: view(2_000), isp2: view(null) });
  setTimeout(() => status(config, { isp1: view(2_000), isp2: view(2_100) }), 600);
  expect(await waitForEdge(config, 1_000)).toEqual({
    heard: true,
    line: "the edge answers agent srv1 through isp1, isp2: see `wanwatch agent status`",
  });
});

it("names an uplink still silent after the grace", async () => {
  const config = agent();
  status(config, { isp1: view(2_000), isp2: view(null) });
  let t = 0;
  const clock = () => (t += 500);
  expect(await waitForEdge(config, 1_000, 20_000, clock)).toEqual({
    heard: true,
    line: "the edge answers agent srv1 through isp1 (not yet through isp2): see `wanwatch agent status`",
  });
});
