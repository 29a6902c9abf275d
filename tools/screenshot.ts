// `npm run screenshot [-- --out FILE] [--width N --height N]`: the status page of a simulated site
// (the real local edge, simulated hosts) after a failover, written to a PNG by headless Chromium.
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { startSimWorld } from "../demo/sim-world.ts";
import { browserUnavailable, launchBrowser } from "./browser.ts";
import { freePort } from "./local-edge.ts";

const { values } = parseArgs({
  options: {
    out: { type: "string", default: "docs/status-page.png" },
    width: { type: "string", default: "1200" },
    height: { type: "string", default: "900" },
  },
});
const width = Number(values.width);
const height = Number(values.height);
if (!(width >= 320 && height >= 320)) {
  console.error("screenshot: --width and --height must be numbers of at least 320");
  process.exit(2);
}
const why = browserUnavailable();
if (why) {
  console.error(`screenshot: ${why}`);
  process.exit(2);
}

const out = resolve(values.out);
const dir = mkdtempSync(join(tmpdir(), "wanwatch-screenshot-"));
const policy = { heartbeatMs: 500, downAfterMs: 1_500, failbackAfterMs: 60_000, minDwellMs: 1_000 };
const [world, browser] = await Promise.all([
  startSimWorld(dir, policy, await freePort(), { stateDir: join(dir, "edge") }),
  launchBrowser(),
]);
try {
  const page = await browser.browser.newPage({ viewport: { width, height } });
  await page.goto(`${world.edgeUrl}/sites/${world.site}`);
  const shows = async (text: string) =>
    page.waitForFunction((t) => document.querySelector("#banner .big")?.textContent === t, text, { timeout: 30_000 });
  await shows("Active: Fiber (isp1)");
  await page.waitForFunction(() => document.querySelector('[data-uplink="isp2"] .state')?.textContent === "up", null, {
    timeout: 30_000,
  });
  await world.cut();
  await shows("Active: LTE (isp2)");
  // Let the servers apply and the tunnels restart, so the picture shows a finished failover.
  await page.waitForFunction(
    () => [...document.querySelectorAll("#events .kind")].some((k) => k.textContent === "tunnel-restart-done"),
    null,
    { timeout: 30_000 },
  );
  mkdirSync(dirname(out), { recursive: true });
  await page.screenshot({ path: out, fullPage: true });
  console.log(`wrote ${out} (${width}×${height} viewport, full page)`);
} finally {
  await Promise.all([world.stop(), browser.close()]);
  rmSync(dir, { recursive: true, force: true });
}
