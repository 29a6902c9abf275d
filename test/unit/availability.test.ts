import { describe, expect, it } from "vitest";
import { availability } from "../../worker/src/availability.ts";

const H = 3600_000;

describe("availability strip", () => {
  it("cuts the window at each recorded change, starting from the first change's prior state", () => {
    const [a, b] = availability(
      [
        { id: "isp1", state: "up" },
        { id: "isp2", state: "up" },
      ],
      [
        { at: 2 * H, uplink: "isp1", from: "up", to: "down" },
        { at: 3 * H, uplink: "isp1", from: "down", to: "up" },
      ],
      0,
      24 * H,
    );
    expect(a!.segments).toEqual([
      { from: 0, to: 2 * H, state: "up" },
      { from: 2 * H, to: 3 * H, state: "down" },
      { from: 3 * H, to: 24 * H, state: "up" },
    ]);
    expect(b!.segments).toEqual([{ from: 0, to: 24 * H, state: "up" }]);
  });

  it("merges repeats, ignores changes outside the window, and is empty for an empty window", () => {
    const [a] = availability(
      [{ id: "isp1", state: "down" }],
      [
        { at: -H, uplink: "isp1", from: "unknown", to: "up" },
        { at: H, uplink: "isp1", from: "unknown", to: "up" },
        { at: H, uplink: "isp1", from: "up", to: "up" },
        { at: 5 * H, uplink: "isp1", from: "up", to: "down" },
      ],
      0,
      6 * H,
    );
    expect(a!.segments).toEqual([
      { from: 0, to: H, state: "unknown" },
      { from: H, to: 5 * H, state: "up" },
      { from: 5 * H, to: 6 * H, state: "down" },
    ]);
    expect(availability([{ id: "isp1", state: "up" }], [], 10, 10)[0]!.segments).toEqual([]);
  });
});
