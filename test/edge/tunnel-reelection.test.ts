import { describe, expect, it } from "vitest";
import { createSite, edgeClock, events, status, TestAgent } from "./support.ts";

const at = edgeClock(Date.UTC(2026, 11, 3, 12, 0, 0));
const WORKER = 'this node is a Docker Swarm worker: only a manager can restart service "tunnel"';

describe("cluster mode: a restarter that cannot restart", () => {
  it("is passed over for another live restarter; when every one has failed, the last keeps retrying and nothing is asked again", async () => {
    await createSite("reelect");
    const sbc1 = await TestAgent.enroll("reelect", "sbc1", "probe", { uplink: "isp1" });
    const sbc2 = await TestAgent.enroll("reelect", "sbc2", "probe", { uplink: "isp2" });
    // Elected first by id: a Swarm worker enrolled as a restarter by mistake.
    const worker = await TestAgent.enroll("reelect", "srv-a", "server", { tunnelRestarter: true });
    const manager = await TestAgent.enroll("reelect", "srv-b", "server", { tunnelRestarter: true });
    at(0);
    await sbc1.beat("isp1");
    for (const t of [0, 1_000, 2_000, 3_000]) {
      at(t);
      await sbc2.beat("isp2");
      for (const s of [worker, manager]) {
        s.appliedGeneration = (await s.beat("isp2"))?.generation ?? null;
      }
    }
    await manager.beat("isp2");
    expect(await worker.beat("isp2")).toMatchObject({ generation: 2, restartTunnels: true });

    worker.lastError = WORKER;
    expect(await worker.beat("isp2")).toMatchObject({ restartTunnels: false });
    expect(await manager.beat("isp2")).toMatchObject({ generation: 2, restartTunnels: true });
    expect((await status("reelect")).tunnels).toMatchObject({ restarter: "srv-b", done: false });

    manager.lastError = "`docker service update --force tunnel` timed out after 120000 ms";
    for (const s of [manager, worker, manager]) await s.beat("isp2");
    expect((await status("reelect")).tunnels).toMatchObject({ restarter: "srv-b", done: false });
    const asked = (await events("reelect"))
      .filter((e) => e.kind === "tunnel-restart-requested")
      .map((e) => e.data?.agent);
    expect(asked.sort()).toEqual(["srv-a", "srv-b"]);

    manager.lastError = null;
    manager.tunnelGeneration = 2;
    await manager.beat("isp2");
    expect((await status("reelect")).tunnels).toMatchObject({ restarter: "srv-b", done: true });
  });
});
