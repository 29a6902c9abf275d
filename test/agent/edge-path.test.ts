// The path to the edge, dpinger-style: a window of handshakes, the lost share and the median.
import { createServer } from "node:net";
import { describe, expect, it } from "vitest";
import { EdgePath, PATH_WINDOW_MS, PathWindow } from "../../agent/src/host/edge-path.ts";

describe("path to the edge", () => {
  it("reports the lost share and the median of the answers over the last minute only", () => {
    const w = new PathWindow(2_000);
    expect(w.report(0)).toBeNull();
    for (const [i, ms] of [10, null, 30, 20, null].entries()) {
      w.add(i * 1_000, ms);
      w.contact(i * 1_000 + 500);
    }
    expect(w.report(5_000)).toEqual({ lossRatio: 0.4, rttMs: 20, samples: 5 });
    // A minute later the first two have left the window.
    w.add(PATH_WINDOW_MS + 1_000, 40);
    w.contact(PATH_WINDOW_MS + 1_000);
    expect(w.report(PATH_WINDOW_MS + 1_000)).toEqual({ lossRatio: 0.25, rttMs: 30, samples: 4 });
    expect(w.report(10 * PATH_WINDOW_MS)).toBeNull();
  });

  it("counts no loss while the edge answered nothing at all: an outage is not a lossy path", () => {
    const w = new PathWindow(3_000);
    for (let t = 0; t < 10_000; t += 1_000) w.add(t, 20), w.contact(t);
    // Cut for 30 s: nothing answers, neither handshakes nor heartbeats.
    for (let t = 10_000; t < 40_000; t += 1_000) w.add(t, null);
    for (let t = 40_000; t < 50_000; t += 1_000) w.add(t, 20), w.contact(t);
    // Not even its first and last handshakes: the edge answered on one side of them only.
    expect(w.report(50_000)).toEqual({ lossRatio: 0, rttMs: 20, samples: 20 });
    // Loss between answers is loss.
    w.add(50_500, null);
    w.contact(51_000);
    expect(w.report(51_000)).toMatchObject({ samples: 21, lossRatio: expect.closeTo(1 / 21) });
  });

  it("a silence shorter than the edge's downAfterMs is loss (a link dropping out again and again); a longer one is an outage", () => {
    const w = new PathWindow(3_000);
    const beat = (from: number, to: number) => {
      for (let t = from; t < to; t += 500) w.contact(t);
      for (let t = from; t < to; t += 1_000) w.add(t, 20);
    };
    // 2 s cuts: the edge rides them out at downAfterMs 3 s, so each one's handshakes are lost on a working path.
    beat(0, 4_000);
    w.add(4_200, null), w.add(5_200, null);
    beat(6_000, 10_000);
    expect(w.report(10_000)).toMatchObject({ samples: 10, lossRatio: 0.2 });
    // The edge says its downAfterMs is 1.5 s: the same cut is now an outage it judges itself;
    // what was judged before stays as it was.
    w.contact(10_000, 1_500);
    w.add(10_200, null), w.add(11_200, null);
    beat(12_500, 14_000);
    expect(w.report(14_000)).toMatchObject({ samples: 12, lossRatio: expect.closeTo(2 / 12) });
  });

  it("probes the edge's own port from the uplink's address; a handshake that cannot leave is a loss", async () => {
    const srv = createServer((s) => s.destroy());
    await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
    const edge = `http://127.0.0.1:${(srv.address() as { port: number }).port}`;
    const reachable = new EdgePath(edge, 20, "127.0.0.1", Date.now, 20);
    // An address this host does not have: the SYN never leaves, as through a dead uplink.
    const cut = new EdgePath(edge, 20, "192.0.2.77", Date.now, 20);
    for (const p of [reachable, cut]) p.start();
    // Heartbeats still answered meanwhile: the lost handshakes are loss, not an outage.
    const answers = setInterval(() => cut.contact(Date.now()), 10);
    // Until both have judged a few handshakes (every 20 ms, or later on a busy machine).
    const t0 = Date.now();
    while ((reachable.report()?.samples ?? 0) <= 5 || (cut.report()?.samples ?? 0) <= 5) {
      if (Date.now() - t0 > 10_000) throw new Error("no handshakes judged within 10 s");
      await new Promise((r) => setTimeout(r, 20));
    }
    console.log(`6 handshakes judged through each path in ${Date.now() - t0} ms`);
    clearInterval(answers);
    for (const p of [reachable, cut]) p.stop();
    srv.close();
    expect(reachable.report()).toMatchObject({ lossRatio: 0, rttMs: expect.any(Number) });
    expect(reachable.report()!.samples).toBeGreaterThan(5);
    expect(cut.report()).toMatchObject({ lossRatio: 1, rttMs: null });
  });

  it("sends no handshake while paused (a metered uplink standing by), and samples again once resumed", async () => {
    let handshakes = 0;
    const srv = createServer((s) => (handshakes++, s.destroy()));
    await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
    const path = new EdgePath(
      `http://127.0.0.1:${(srv.address() as { port: number }).port}`,
      20,
      "127.0.0.1",
      Date.now,
      20,
    );
    path.pause(true);
    path.start();
    await new Promise((r) => setTimeout(r, 300));
    expect(handshakes).toBe(0);
    path.pause(false);
    const t0 = Date.now();
    while (handshakes < 3 && Date.now() - t0 < 10_000) await new Promise((r) => setTimeout(r, 20));
    path.pause(true);
    const paused = handshakes;
    await new Promise((r) => setTimeout(r, 300));
    path.stop();
    srv.close();
    expect(paused).toBeGreaterThanOrEqual(3);
    // One handshake may have been in flight when it paused.
    expect(handshakes - paused).toBeLessThanOrEqual(1);
  });
});
