import { readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { readState, statePath, writeState } from "../../agent/src/state/files.ts";
import { tempDir } from "./support.ts";

describe("state file", () => {
  it("round-trips, creating stateDir, leaving no temporary file behind", () => {
    const dir = join(tempDir(), "nested/state");
    const s = {
      directive: { generation: 2, activeUplink: "isp2", restartTunnels: true },
      appliedGeneration: 2,
      tunnelGeneration: 1,
      lastError: "x",
      savedAt: 5,
    };
    writeState(dir, s);
    writeState(dir, { ...s, tunnelGeneration: 2 });
    expect(readState(dir)).toEqual({ ok: true, value: { version: 1, ...s, tunnelGeneration: 2 } });
    expect(readdirSync(dir)).toEqual(["state.json"]);
  });

  it("tells a missing file from a damaged one", () => {
    const dir = tempDir();
    expect(readState(dir)).toMatchObject({ ok: false, missing: true });
    writeFileSync(statePath(dir), "{ half a fi");
    expect(readState(dir)).toMatchObject({ ok: false, missing: false, error: `${statePath(dir)} is not JSON` });
    writeFileSync(statePath(dir), JSON.stringify({ version: 1, appliedGeneration: "three" }));
    expect(readState(dir)).toMatchObject({
      ok: false,
      missing: false,
      error: `${statePath(dir)} is not a wanwatch state file`,
    });
  });

  it("reports a stateDir it cannot write with the path and the cause", () => {
    const dir = tempDir();
    writeFileSync(join(dir, "file"), "");
    expect(() =>
      writeState(join(dir, "file"), {
        directive: null,
        appliedGeneration: null,
        tunnelGeneration: null,
        lastError: null,
        savedAt: 0,
      }),
    ).toThrow(/cannot write .*file\/state\.json/);
  });
});
