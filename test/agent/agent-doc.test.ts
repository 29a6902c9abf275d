// docs/agent.md and `agent install` cannot drift from the agent config's schema: every field is in
// the reference's table, and every leaf field has an install flag, named in its row.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import type { z } from "zod";
import { INSTALL } from "../../agent/src/cli/install.ts";
import { AgentConfig } from "../../agent/src/config/schema.ts";
import { FIELD_FLAGS } from "../../agent/src/install/config-flags.ts";
import { ROOT, buildBundle, wanwatch } from "../../lab/agent-process.ts";
import { agentFiles } from "./support.ts";

type Def = {
  type: string;
  shape?: Record<string, z.ZodType>;
  element?: z.ZodType;
  innerType?: z.ZodType;
  out?: z.ZodType;
  options?: z.ZodType[];
};
const def = (s: z.ZodType) => (s as unknown as { _zod: { def: Def } })._zod.def;

/** Every field path of a schema ("uplinks[].id"), and whether it is a leaf. */
function fields(s: z.ZodType, path = ""): { path: string; leaf: boolean }[] {
  const d = def(s);
  switch (d.type) {
    case "optional":
    case "default":
    case "prefault":
    case "nullable":
      return fields(d.innerType!, path);
    case "pipe": // z.preprocess: the schema after the old spellings are renamed
      return fields(d.out!, path);
    case "union": {
      const all = d.options!.flatMap((o) => fields(o, path));
      return [...new Map(all.map((f) => [f.path, f])).values()];
    }
    case "array":
      return [{ path, leaf: false }, ...fields(d.element!, `${path}[]`).filter((f) => f.path !== `${path}[]`)];
    case "object":
      return [
        ...(path ? [{ path, leaf: false }] : []),
        ...Object.entries(d.shape!).flatMap(([k, v]) => {
          const p = path ? `${path}.${k}` : k;
          const sub = fields(v, p);
          return sub.length ? sub : [{ path: p, leaf: true }];
        }),
      ];
    default:
      return path ? [{ path, leaf: true }] : [];
  }
}

const schemaFields = fields(AgentConfig as unknown as z.ZodType);
const doc = readFileSync(join(ROOT, "docs/agent.md"), "utf8");
const row = (path: string) => doc.split("\n").find((l) => l.startsWith(`| \`${path}\` |`));

describe("the agent config reference", () => {
  it("reads the whole schema (the walker itself)", () => {
    expect(schemaFields.map((f) => f.path)).toEqual(
      expect.arrayContaining([
        "edge",
        "uplinks",
        "uplinks[].connection",
        "tunnels.backend",
        "tunnels.readyUrl",
        "heartbeatMs",
      ]),
    );
    expect(schemaFields.find((f) => f.path === "uplinks")?.leaf).toBe(false);
  });

  it.each(schemaFields.map((f) => [f.path]))("documents %s", (path) => {
    expect(row(path), `docs/agent.md has no table row for \`${path}\``).toBeDefined();
  });

  it.each(schemaFields.filter((f) => f.leaf).map((f) => [f.path]))(
    "%s has an `agent install` flag, named in its row",
    (path) => {
      const flag = FIELD_FLAGS[path];
      expect(flag, `no install flag for ${path}`).toBeDefined();
      expect(Object.keys(INSTALL.flags)).toContain(flag);
      expect(row(path)).toContain(`\`--${flag}`);
    },
  );

  it("names no field the schema does not have", () => {
    const known = new Set(schemaFields.map((f) => f.path));
    expect(Object.keys(FIELD_FLAGS).filter((p) => !known.has(p))).toEqual([]);
    // Field rows (the refusal table's codes have underscores, no field has).
    const documented = [...doc.matchAll(/^\| `([a-zA-Z.[\]]+)` \|/gm)].map((m) => m[1]!);
    expect(documented.filter((p) => !known.has(p))).toEqual([]);
  });
});

it("the agent's old `tunnels.restart` is still read, with a note to rename it", async () => {
  buildBundle();
  const f = agentFiles({
    edge: "http://127.0.0.1:9",
    site: "office",
    agent: "srv1",
    role: "server",
    uplinks: [
      { id: "isp1", interface: "lo" },
      { id: "isp2", interface: "lo" },
    ],
    tunnels: { restart: "swarm", service: "cloudflared" },
  });
  expect(AgentConfig.parse(JSON.parse(readFileSync(f.configPath, "utf8"))).tunnels).toEqual({
    backend: "swarm",
    service: "cloudflared",
    timeoutMs: 120_000,
  });
  const r = await wanwatch(["doctor", "--config", f.configPath]);
  expect(r.stdout.split("\n")[0]).toBe(
    `✓ config ${f.configPath} (tunnels.restart is now tunnels.backend (the site's tunnels.restart says which servers restart; this says how): rename it)`,
  );
});
