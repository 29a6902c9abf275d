// Help and usage errors a person can act on: every command explains each of its flags with an
// example; a mistake on the command line is one line and exit 2, never a stack trace.
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { SITE_COMMANDS } from "../../agent/src/cli/admin.ts";
import { AGENT_STATUS } from "../../agent/src/cli/agent-status.ts";
import { DOCTOR } from "../../agent/src/cli/doctor.ts";
import { parseDuration } from "../../agent/src/cli/duration.ts";
import { INSTALL } from "../../agent/src/cli/install.ts";
import { UNINSTALL } from "../../agent/src/cli/uninstall.ts";
import { UNROUTE } from "../../agent/src/cli/unroute.ts";
import { buildBundle, wanwatch } from "../../lab/agent-process.ts";
import { tempDir } from "./support.ts";

beforeAll(() => buildBundle());

const specs = [AGENT_STATUS, DOCTOR, INSTALL, UNINSTALL, UNROUTE, ...Object.values(SITE_COMMANDS)];

describe("--help", () => {
  it.each([...specs.map((s) => [s.name, s] as const), ["agent run", null] as const])(
    "wanwatch %s --help: each flag explained, with an example; exit 0",
    async (name, spec) => {
      const r = await wanwatch([...name.split(" "), "--help"]);
      expect(r.code).toBe(0);
      expect(r.stderr).toBe("");
      expect(r.stdout.split("\n")[0]).toMatch(new RegExp(`^wanwatch ${name}\\b.*: \\S`));
      for (const flag of Object.keys(spec?.flags ?? { config: 1 }))
        expect(r.stdout).toMatch(new RegExp(`^  --${flag}\\b.*?  +\\S`, "m"));
      expect(r.stdout).toMatch(new RegExp(`^examples:\\n  wanwatch ${name}\\b`, "m"));
    },
  );

  it("wanwatch site --help lists the site commands", async () => {
    const r = await wanwatch(["site", "--help"]);
    expect(r.code).toBe(0);
    for (const c of Object.keys(SITE_COMMANDS)) expect(r.stdout).toContain(`wanwatch site ${c}`);
  });
});

describe("usage errors: one line, exit 2", () => {
  it.each([
    [
      ["agent", "install", "--tunnnel", "swarm"],
      "wanwatch: Unknown option '--tunnnel': see `wanwatch agent install --help`",
    ],
    [["doctor", "--verbose"], "wanwatch: Unknown option '--verbose': see `wanwatch doctor --help`"],
    [["site", "apply", "a.yaml", "b.yaml"], 'wanwatch: unexpected argument "b.yaml": see `wanwatch site apply --help`'],
    [
      [
        "site",
        "override",
        "--uplink",
        "isp2",
        "--for",
        "2 hours",
        "--reason",
        "x",
        "--edge",
        "https://e.example",
        "--site",
        "office",
      ],
      "wanwatch: --for 2 hours: not a duration; write e.g. 90s, 30m, 2h",
    ],
    [
      ["site", "status", "--edge", "wanwatch.example.workers.dev", "--site", "office"],
      'wanwatch: --edge "wanwatch.example.workers.dev": expected the https:// URL of your edge, e.g. --edge https://wanwatch.example.workers.dev',
    ],
    [
      ["site", "status", "--site", "office"],
      "wanwatch: --edge URL is required, e.g. --edge https://wanwatch.example.workers.dev: see `wanwatch site status --help`",
    ],
    [["agent", "frob"], 'wanwatch: unknown agent command "frob": run, status, install, uninstall, unroute'],
  ])("%j", async (args, line) => {
    const r = await wanwatch(args, {
      env: { WANWATCH_ADMIN_TOKEN: "t", WANWATCH_EDGE: undefined, WANWATCH_SITE: undefined },
    });
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(`${line}\n`);
  });

  it("an empty site file says it is empty", async () => {
    const file = join(tempDir(), "site.yaml");
    writeFileSync(file, "\n");
    const r = await wanwatch(["site", "apply", file, "--edge", "https://e.example", "--site", "office"], {
      env: { WANWATCH_ADMIN_TOKEN: "t" },
    });
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(
      `wanwatch: ${file} is empty: write the site's config in it (YAML or JSON; see \`wanwatch site apply --help\`)\n`,
    );
  });
});

it.each([
  ["90s", 90_000],
  ["2h", 7_200_000],
  ["1h30m", 5_400_000],
  ["500ms", 500],
  ["45", 45_000],
  ["2 h", null],
  ["-5", null],
  ["", null],
])("duration %j is %s ms (a bare number in seconds)", (text, ms) => {
  expect(parseDuration(text, "s")).toBe(ms);
});
