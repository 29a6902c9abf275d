// What `agent install --enroll` reads from the routing table: each default route's interface, router and metric.
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { expect, it } from "vitest";
import { defaultRouteInterface, defaultRoutes } from "../../agent/src/install/detect.ts";
import { tempDir } from "./support.ts";

const HEADER = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT";

it("reads every IPv4 default route (router as a dotted address, lowest metric first), and nothing else", () => {
  const table = join(tempDir(), "route");
  writeFileSync(
    table,
    [
      HEADER,
      "eth1\t00000000\t0102A8C0\t0003\t0\t0\t200\t00000000\t0\t0\t0",
      "eth1\t0002A8C0\t00000000\t0001\t0\t0\t200\t00FFFFFF\t0\t0\t0",
      "eth0\t00000000\t0101A8C0\t0003\t0\t0\t100\t00000000\t0\t0\t0",
      "wg0\t00000000\t00000000\t0001\t0\t0\t50\t00000000\t0\t0\t0",
      "",
    ].join("\n"),
  );
  expect(defaultRoutes(table)).toEqual([
    { interface: "wg0", gateway: null, metric: 50 },
    { interface: "eth0", gateway: "192.168.1.1", metric: 100 },
    { interface: "eth1", gateway: "192.168.2.1", metric: 200 },
  ]);
  expect(defaultRouteInterface(table)).toBe("wg0");
  expect(defaultRoutes(join(tempDir(), "missing"))).toEqual([]);
});
