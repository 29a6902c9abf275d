import { describe, expect, it } from "vitest";
import type { SiteStatus, UplinkStatus } from "#shared";
import { statusTable } from "../../agent/src/cli/tables.ts";
import {
  UPLINK_BYTES_EVERY_MS,
  UPLINK_BYTES_OWN_PATH_EVERY_MS,
  UplinkBytesReport,
} from "../../agent/src/daemon/uplink-bytes.ts";

const uplinks = [
  { id: "isp1", interface: "lan1" },
  { id: "isp2", interface: "lan2" },
];

function reporter(ifaces = uplinks, missing: string[] = []) {
  let now = 0;
  let bytes = 0;
  const r = new UplinkBytesReport(
    ifaces,
    (iface) => (missing.includes(iface) ? null : { counter: `boot:${iface}`, rx: (bytes += 10), tx: 0 }),
    () => now,
  );
  return { r, at: (ms: number) => void (now = ms) };
}

describe("when heartbeats carry the interface counters", () => {
  it("through the active uplink once a minute, never through the standby the bytes are counted for", () => {
    const { r, at } = reporter();
    expect(r.for("isp2", "isp1")).toEqual({});
    expect(r.for("isp1", "isp1").uplinkBytes?.map((b) => b.uplink)).toEqual(["isp1", "isp2"]);
    at(UPLINK_BYTES_EVERY_MS - 1);
    expect(r.for("isp1", "isp1")).toEqual({});
    at(10 * UPLINK_BYTES_EVERY_MS);
    expect(r.for("isp2", "isp1")).toEqual({});
    expect(r.for("isp1", "isp1").uplinkBytes).toHaveLength(2);
  });

  it("before any directive, through whichever uplink beats first", () => {
    const { r } = reporter();
    expect(r.for("isp2", null).uplinkBytes).toHaveLength(2);
    expect(r.for("isp1", null)).toEqual({});
  });

  it("a probe behind the standby reports through it, every ten minutes", () => {
    const { r, at } = reporter([{ id: "isp2", interface: "wan0" }]);
    expect(r.for("isp2", "isp1").uplinkBytes).toEqual([{ uplink: "isp2", counter: "boot:wan0", rx: 10, tx: 0 }]);
    at(UPLINK_BYTES_OWN_PATH_EVERY_MS - 1);
    expect(r.for("isp2", "isp1")).toEqual({});
    at(UPLINK_BYTES_OWN_PATH_EVERY_MS);
    expect(r.for("isp2", "isp1").uplinkBytes).toHaveLength(1);
  });

  it("leaves out an interface that is gone, and sends nothing when none is there", () => {
    expect(
      reporter(uplinks, ["lan1"])
        .r.for("isp1", "isp1")
        .uplinkBytes?.map((b) => b.uplink),
    ).toEqual(["isp2"]);
    expect(reporter(uplinks, ["lan1", "lan2"]).r.for("isp1", "isp1")).toEqual({});
  });
});

describe("wanwatch site status", () => {
  it("shows a metered uplink's data this period against its cap", () => {
    const uplink = (id: string, dataUse?: UplinkStatus["dataUse"]): UplinkStatus => ({
      id,
      name: null,
      priority: id === "isp1" ? 1 : 2,
      state: "up",
      since: 0,
      lastHeartbeatAt: 0,
      observedIp: null,
      observedAsn: null,
      rttMs: null,
      gatewayRttMs: null,
      lossRatio: null,
      pathRttMs: null,
      degraded: false,
      ...(dataUse ? { dataUse } : {}),
    });
    const s = {
      site: "office",
      now: 0,
      activeUplink: "isp1",
      generation: 1,
      mode: "auto",
      since: null,
      override: null,
      directive: null,
      uplinks: [
        uplink("isp1"),
        uplink("isp2", { usedMB: 8123.4, capMB: 10_000, percent: 81.2, periodStart: 0, resetsAt: 1 }),
      ],
      agents: [],
      tunnels: { mode: "none", generation: 1, restarter: null, requestedAt: null, done: true },
      notify: { pending: 0, nextAttemptAt: null, targets: [] },
    } satisfies SiteStatus;
    const lines = statusTable(s).split("\n");
    expect(lines.find((l) => l.startsWith("UPLINK"))).toMatch(/DATA THIS PERIOD$/);
    expect(lines.find((l) => l.startsWith("isp2"))).toMatch(/ 8123\.4 \/ 10000 MB \(81\.2 %\)$/);
    expect(lines.find((l) => l.startsWith("isp1"))).toMatch(/ -$/);
  });
});
