// A reporter that ends the run with what did not run and why, and a plain count line. A group of
// tests that cannot run here (no root, a missing package) is a describe whose name ends in
// " — skipped: <reason>"; its skipped tests are summed under that reason.
import type { Reporter, TestModule } from "vitest/node";

const SKIPPED = / — skipped: (.+)$/;

export default class SkipSummary implements Reporter {
  onTestRunEnd(modules: ReadonlyArray<TestModule>): void {
    const groups = new Map<string, number>();
    const count = { passed: 0, failed: 0, skipped: 0 };
    for (const m of modules)
      for (const t of m.children.allTests()) {
        const state = t.result().state;
        if (state === "passed" || state === "failed") count[state]++;
        if (state !== "skipped") continue;
        count.skipped++;
        let name = t.fullName;
        for (let s = t.parent; s.type === "suite"; s = s.parent) if (SKIPPED.test(s.name)) name = s.name;
        const reason = SKIPPED.exec(name)?.[1] ?? "skipped in the test itself";
        const key = `${m.relativeModuleId.replace(/^.*?test\//, "test/")}: ${reason}`;
        groups.set(key, (groups.get(key) ?? 0) + 1);
      }
    if (groups.size > 0) {
      console.log("\nSkipped, and why:");
      for (const [key, n] of groups) console.log(`  ${n} in ${key}`);
    }
    console.log(`\ntests: ${count.passed} passed, ${count.failed} failed, ${count.skipped} skipped`);
  }
}
