// The lab's slow uplink (lab/delay-line.py) is itself under test: scenario 11 and the soak
// trust it to add its delay, and to change it without dropping what is in flight (a gap there,
// under load, outlasted TCP's resends and read as an outage: a failover where a degraded switch
// was due). UDP echoes every 10 ms from the SBC behind router 1 to "the internet", across every
// change; UDP is never resent, so each loss shows.
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { answered, labUnavailable } from "../../lab/netns.ts";
import { EDGE_ADDRESS, createLab, delayLineUnavailable, type Lab } from "../../lab/topology.ts";
import { NODE22, ROOT } from "../../lab/agent-process.ts";

const why = labUnavailable() ?? delayLineUnavailable();
const PORT = 9_999;
let lab: Lab;

beforeAll(async () => {
  if (why) return;
  lab = await createLab({ servers: [], dir: join(ROOT, ".state", `wire-${process.pid}`) });
}, 60_000);

afterAll(async () => {
  await lab?.destroy();
}, 30_000);

const ECHO = `const s = require("node:dgram").createSocket("udp4");
s.on("message", (m, r) => s.send(m, r.port, r.address));
s.bind(${PORT}, "${EDGE_ADDRESS}", () => console.log("ready"));`;

// Sends a numbered datagram every 10 ms until stdin closes; prints "seq sentAt rttMs" per echo.
const PINGER = `const s = require("node:dgram").createSocket("udp4");
let seq = 0;
s.on("message", (m) => { const [n, at] = m.toString().split(" ").map(Number); console.log(n, at, Date.now() - at); });
const t = setInterval(() => s.send(\`\${seq++} \${Date.now()}\`, ${PORT}, "${EDGE_ADDRESS}"), 10);
process.stdin.on("end", () => { clearInterval(t); console.log("sent", seq); setTimeout(() => process.exit(0), 1500); }).resume();`;

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe.skipIf(why)(`the lab's delay line${why ? ` — skipped: ${why}` : ""}`, () => {
  it("adds its delay both ways, and changes it, or goes, without a gap in what it carries", async () => {
    const echo = lab.inet.spawn([NODE22, "-e", ECHO]);
    try {
      await answered(echo, null, "ready");
      const pinger = lab.sbcs[0].spawn([NODE22, "-e", PINGER], { stdio: ["pipe", "pipe", "inherit"] });
      let out = "";
      pinger.stdout!.on("data", (c) => (out += c));
      const phases: { oneWayMs: number; from: number; to: number }[] = [];
      for (const oneWayMs of [0, 100, 300, 50, 0]) {
        await lab.delayed(1, oneWayMs);
        const from = Date.now();
        await pause(1_500);
        phases.push({ oneWayMs, from, to: Date.now() });
      }
      pinger.stdin!.end();
      await new Promise((done) => pinger.once("exit", done));

      const sent = Number(/^sent (\d+)$/m.exec(out)?.[1]);
      const echoes = [...out.matchAll(/^(\d+) (\d+) (\d+)$/gm)].map((m) => ({
        seq: Number(m[1]),
        at: Number(m[2]),
        rtt: Number(m[3]),
      }));
      const lost = Array.from({ length: sent }, (_, n) => n).filter((n) => !echoes.some((e) => e.seq === n));
      // The longest run of consecutive losses: a gap at a change (the bug this guards) drops every
      // datagram in flight, a burst; a busy machine may drop the odd one, scattered.
      const burst = lost.reduce(
        (run, n, i) =>
          i > 0 && lost[i - 1] === n - 1
            ? { now: run.now + 1, max: Math.max(run.max, run.now + 1) }
            : { now: 1, max: Math.max(run.max, 1) },
        { now: 0, max: 0 },
      ).max;
      const medians = phases.map((p) => {
        // Each phase's round trips, past the first half second (what the previous delay still held).
        const rtts = echoes
          .filter((e) => e.at >= p.from + 500 && e.at < p.to)
          .map((e) => e.rtt)
          .sort((a, b) => a - b);
        return { oneWayMs: p.oneWayMs, median: rtts[Math.floor(rtts.length / 2)]! };
      });
      console.log(
        `delay line: ${sent} datagrams sent, ${lost.length} lost (longest run ${burst}); median round trips ${medians.map((m) => `${m.median} ms at ${m.oneWayMs} ms each way`).join(", ")}`,
      );
      expect(sent, "enough datagrams to see a gap").toBeGreaterThan(200);
      expect(burst, `${lost.length} of ${sent} datagrams lost`).toBeLessThanOrEqual(3);
      expect(lost.length, `${lost.length} of ${sent} datagrams lost`).toBeLessThanOrEqual(sent / 100);
      for (const { oneWayMs, median } of medians) {
        expect(median, `median round trip at ${oneWayMs} ms each way`).toBeGreaterThanOrEqual(2 * oneWayMs);
        // The line adds its delay and not much more; generous, as it is a userspace process on a
        // machine the other tests keep busy (a wrong delay is off by 100s of ms, not tens).
        expect(median, `median round trip at ${oneWayMs} ms each way`).toBeLessThan(2 * oneWayMs + 250);
      }
    } finally {
      await lab.delayed(1, 0);
      echo.kill();
    }
  }, 60_000);
});
