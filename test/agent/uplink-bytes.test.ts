import { describe, expect, it } from "vitest";
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
