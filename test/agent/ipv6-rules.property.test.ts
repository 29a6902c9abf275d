import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { Route, Rule } from "../../agent/src/host/ip.ts";
import { planIpv6Routing, type Ipv6Routing, type Ipv6Target } from "../../agent/src/host/policy-routing6.ts";

/** The kernel's IPv6 rules and uplink tables, as `ip` changes them: the oracle the plan is run on. */
function applyStep(k: { rules: Rule[]; tables: Map<number, Route[]> }, argv: string[]): void {
  const [fam, obj, verb, ...rest] = argv;
  expect(fam).toBe("-6");
  const table = Number(rest.at(-1));
  if (obj === "rule" && verb === "del") {
    const i = k.rules.findIndex((r) => r.priority === table);
    if (i < 0) throw new Error("RTNETLINK answers: No such file or directory");
    k.rules.splice(i, 1);
  } else if (obj === "rule" && verb === "add") {
    const [, src, , dst, , lookup] = rest;
    // A rule may only point at a table that leads somewhere: else the edge is unreachable meanwhile.
    expect(k.tables.get(Number(lookup))?.some((r) => r.dst === "default")).toBe(true);
    k.rules.push({ priority: table, src: src!.replace(/\/128$/, ""), dst: dst!.replace(/\/128$/, ""), table: lookup });
  } else if (obj === "route" && verb === "replace") {
    const [, , gateway, , dev] = rest;
    k.tables.set(table, [
      ...(k.tables.get(table) ?? []).filter((r) => r.dst !== "default"),
      { dst: "default", gateway, dev },
    ]);
  } else if (obj === "route" && verb === "flush") k.tables.set(table, []);
  else throw new Error(`unexpected step ${argv.join(" ")}`);
}

const TABLES = [1101, 1102, 1103];
const addr = fc.constantFrom("2001:db8:1::21", "2001:db8:11::21", "2001:db8:2::21", "2001:db8:2::99");
const gw = fc.constantFrom("fe80::1", "fe80::2");
const dev = fc.constantFrom("eth0", "eth1");
const edge6 = fc.option(fc.constantFrom("2001:db8:ff::10", "2001:db8:ff::11"), { nil: null });
const path = fc.option(fc.record({ interface: dev, source: addr, gateway: gw }), { nil: null });
const rule = fc.record({
  priority: fc.constantFrom(...TABLES, 32766),
  src: addr,
  dst: fc.option(fc.constantFrom("2001:db8:ff::10", "2001:db8:ff::11"), { nil: undefined }),
  table: fc.constantFrom("1101", "1102", "1103", "main"),
});
const route = fc.record({ dst: fc.constantFrom("default", "2001:db8:1::/64"), gateway: gw, dev });
const host = fc.record({
  rules: fc.array(rule, { maxLength: 6 }),
  tables: fc.tuple(...TABLES.map(() => fc.array(route, { maxLength: 2 }))),
});

describe("the IPv6 rules' plan", () => {
  it("leaves each uplink with exactly its rule to the edge and its table's route, or with neither; replanned, nothing", () => {
    fc.assert(
      fc.property(host, fc.tuple(path, path, path), edge6, (h, paths, edge) => {
        const k = { rules: h.rules.map((r) => ({ ...r })), tables: new Map(TABLES.map((t, i) => [t, h.tables[i]!])) };
        const targets: Ipv6Target[] = TABLES.map((table, i) => ({ table, path: paths[i]! }));
        for (const step of planIpv6Routing(k, targets, edge)) applyStep(k, step);
        for (const { table, path: p } of targets) {
          const rules = k.rules.filter((r) => r.priority === table);
          const routes = k.tables.get(table)!;
          if (p === null || edge === null) {
            expect(rules).toEqual([]);
            expect(routes).toEqual([]);
          } else {
            expect(rules).toEqual([{ priority: table, src: p.source, dst: edge, table: String(table) }]);
            expect(routes).toEqual([{ dst: "default", gateway: p.gateway, dev: p.interface }]);
          }
        }
        // Rules at other priorities (the system's own) are never touched.
        expect(k.rules.filter((r) => !TABLES.includes(r.priority))).toEqual(
          h.rules.filter((r) => !TABLES.includes(r.priority)),
        );
        const after: Ipv6Routing = k;
        expect(planIpv6Routing(after, targets, edge)).toEqual([]);
      }),
      { numRuns: 500 },
    );
  });

  it("pins only traffic to the edge: the rule names the edge's address as its destination", () => {
    const steps = planIpv6Routing(
      { rules: [], tables: new Map() },
      [{ table: 1101, path: { interface: "eth0", source: "2001:db8:1::21", gateway: "fe80::1" } }],
      "2001:db8:ff::10",
    );
    expect(steps).toEqual([
      ["-6", "route", "replace", "default", "via", "fe80::1", "dev", "eth0", "table", "1101"],
      [
        "-6",
        "rule",
        "add",
        "from",
        "2001:db8:1::21/128",
        "to",
        "2001:db8:ff::10/128",
        "lookup",
        "1101",
        "priority",
        "1101",
      ],
    ]);
  });
});
