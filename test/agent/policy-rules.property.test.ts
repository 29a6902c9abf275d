import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { Family, Route, Rule } from "../../agent/src/host/ip.ts";
import { type EdgePin, type Pin, planRules, ruleSelectors } from "../../agent/src/host/policy-rules.ts";
import { planIpv6Routing, type Ipv6Target } from "../../agent/src/host/policy-routing6.ts";

// The oracle: a small model of the kernel's rules and tables, changed by `ip` argv as the kernel
// would (a rule is deleted only when one matches every attribute given), read in `ip -j`'s form
// (a full-length prefix left out, TCP as `tcp`).

/** `tables` null: routes not modelled (the rules alone). */
type Kernel = { rules: Rule[]; tables: Map<number, Route[]> | null };

const hostLen = (a: string) => (a.includes(":") ? 128 : 32);

/** A rule's attributes from `ip rule` argv (`from`, `to`, `ipproto`, `dport`, `lookup`, `priority`). */
function parseRule(args: string[]): Rule {
  const v = new Map<string, string>();
  for (let i = 0; i < args.length; i += 2) v.set(args[i]!, args[i + 1]!);
  const prefix = (p: string | undefined) => {
    if (p === undefined) return {};
    const [a, len] = p.split("/");
    return { a: a!, len: len === undefined || Number(len) === hostLen(a!) ? undefined : Number(len) };
  };
  const from = prefix(v.get("from"));
  const to = prefix(v.get("to"));
  return {
    priority: Number(v.get("priority")),
    ...(from.a ? { src: from.a, ...(from.len !== undefined ? { srclen: from.len } : {}) } : {}),
    ...(to.a ? { dst: to.a, ...(to.len !== undefined ? { dstlen: to.len } : {}) } : {}),
    ...(v.has("ipproto") ? { ipproto: v.get("ipproto") === "6" ? "tcp" : `ipproto-${v.get("ipproto")}` } : {}),
    ...(v.has("dport") ? { dport: Number(v.get("dport")) } : {}),
    ...(v.has("lookup") ? { table: v.get("lookup") } : {}),
  };
}

/** One rule in a comparable form: what the kernel matches on, whichever way it is spelled. */
const canonical = (r: Rule) =>
  JSON.stringify([
    r.priority,
    r.src ?? null,
    r.src ? (r.srclen ?? hostLen(r.src)) : null,
    r.dst ?? null,
    r.dst ? (r.dstlen ?? hostLen(r.dst)) : null,
    r.ipproto === undefined ? null : r.ipproto === "tcp" ? "ipproto-6" : r.ipproto,
    r.dport ?? null,
    r.table ?? null,
  ]);

function applyStep(k: Kernel, family: Family, argv: string[]): void {
  const [fam, obj, verb, ...rest] = argv;
  expect(fam).toBe(`-${family}`);
  if (obj === "rule") {
    const given = parseRule(rest);
    if (verb === "add") {
      // A rule may only point at a table that leads somewhere: else the edge is unreachable meanwhile.
      if (k.tables) expect(k.tables.get(Number(given.table))?.some((r) => r.dst === "default")).toBe(true);
      if (k.rules.some((r) => canonical(r) === canonical(given))) throw new Error("RTNETLINK answers: File exists");
      k.rules.push(given);
    } else if (verb === "del") {
      const i = k.rules.findIndex((r) => canonical(r) === canonical({ ...given, table: given.table ?? r.table }));
      if (i < 0) throw new Error(`RTNETLINK answers: No such file or directory (${argv.join(" ")})`);
      k.rules.splice(i, 1);
    } else throw new Error(`unexpected step ${argv.join(" ")}`);
    return;
  }
  const table = Number(rest.at(-1));
  if (!k.tables) throw new Error(`unexpected step ${argv.join(" ")}`);
  if (obj === "route" && verb === "replace") {
    const [, , gateway, , dev] = rest;
    k.tables.set(table, [
      ...(k.tables.get(table) ?? []).filter((r) => r.dst !== "default"),
      { dst: "default", gateway, dev },
    ]);
  } else if (obj === "route" && verb === "flush") k.tables.set(table, []);
  else throw new Error(`unexpected step ${argv.join(" ")}`);
}

/** What must be at an uplink's priority afterwards, in the kernel's own terms. */
function expected(table: number, source: string, pin: Pin): string[] {
  const t = String(table);
  if (pin === "all") return [canonical({ priority: table, src: source, table: t })];
  return [...new Set(pin.edge)].map((e) =>
    canonical({ priority: table, src: source, dst: e, ipproto: "tcp", dport: pin.port, table: t }),
  );
}

const TABLES = [1101, 1102, 1103];
const ADDRESSES: Record<Family, { sources: string[]; edges: string[] }> = {
  4: { sources: ["192.0.2.21", "192.0.2.99", "198.51.100.7"], edges: ["203.0.113.10", "203.0.113.11"] },
  6: {
    sources: ["2001:db8:1::21", "2001:db8:11::21", "2001:db8:2::99"],
    edges: ["2001:db8:ff::10", "2001:db8:ff::11"],
  },
};
const PORTS = [443, 8787];

/** Rules a host may have: the agent's of today and of older runs (other sources, edges, ports, forms), others'. */
const someRule = (family: Family) => {
  const { sources, edges } = ADDRESSES[family];
  return fc.record(
    {
      priority: fc.constantFrom(...TABLES, 32766),
      src: fc.constantFrom(...sources),
      srclen: fc.constantFrom(undefined, 24, 64),
      dst: fc.constantFrom(...edges),
      ipproto: fc.constantFrom("tcp", "ipproto-6", "ipproto-17"),
      dport: fc.constantFrom(...PORTS),
      table: fc.constantFrom("1101", "1102", "1103", "main"),
    },
    { requiredKeys: ["priority", "table"] },
  );
};
const pinOf = (family: Family): fc.Arbitrary<EdgePin> =>
  fc.record({
    edge: fc.uniqueArray(fc.constantFrom(...ADDRESSES[family].edges), { maxLength: 2 }),
    port: fc.constantFrom(...PORTS),
  });
/** A real kernel holds no two equal rules (`File exists`). */
const distinct = (rules: Rule[]) => rules.filter((r, i) => rules.findIndex((o) => canonical(o) === canonical(r)) === i);

describe("the per-uplink rules' plan, both families", () => {
  it("leaves exactly the wanted rules at each uplink's priority, never deletes one in place, touches no other rule; replanned, nothing", () => {
    const family = fc.constantFrom<Family>(4, 6);
    const input = family.chain((f) =>
      fc.record({
        family: fc.constant(f),
        rules: fc.array(someRule(f), { maxLength: 8 }).map(distinct),
        sources: fc.tuple(...TABLES.map(() => fc.option(fc.constantFrom(...ADDRESSES[f].sources), { nil: null }))),
        pin: fc.oneof(pinOf(f), fc.constant<Pin>("all")),
      }),
    );
    fc.assert(
      fc.property(input, ({ family, rules, sources, pin }) => {
        const k: Kernel = { rules: rules.map((r) => ({ ...r })), tables: null };
        for (const [i, table] of TABLES.entries()) {
          const source = sources[i];
          const want = source === null ? [] : ruleSelectors(source, pin);
          const must = source === null ? [] : expected(table, source, pin);
          for (const step of planRules(family, k.rules, table, want)) {
            const before = new Set(k.rules.map(canonical));
            applyStep(k, family, step);
            // The agent's heartbeats never lose their path: a wanted rule once there stays.
            for (const m of must) if (before.has(m)) expect(k.rules.map(canonical)).toContain(m);
          }
          expect(
            k.rules
              .filter((r) => r.priority === table)
              .map(canonical)
              .sort(),
          ).toEqual([...must].sort());
          expect(planRules(family, k.rules, table, want)).toEqual([]);
        }
        // Rules at other priorities (the system's own) are never touched.
        expect(k.rules.filter((r) => !TABLES.includes(r.priority))).toEqual(
          rules.filter((r) => !TABLES.includes(r.priority)),
        );
      }),
      { numRuns: 2_000 },
    );
  });
});

describe("the IPv6 routing plan", () => {
  const { sources, edges } = ADDRESSES[6];
  const gw = fc.constantFrom("fe80::1", "fe80::2");
  const dev = fc.constantFrom("eth0", "eth1");
  const path = fc.option(fc.record({ interface: dev, source: fc.constantFrom(...sources), gateway: gw }), {
    nil: null,
  });
  const route = fc.record({ dst: fc.constantFrom("default", "2001:db8:1::/64"), gateway: gw, dev });
  const host = fc.record({
    rules: fc.array(someRule(6), { maxLength: 6 }).map(distinct),
    tables: fc.tuple(...TABLES.map(() => fc.array(route, { maxLength: 2 }))),
  });
  const pin = fc.option(
    fc.record({ edge: fc.constantFrom(...edges).map((e) => [e]), port: fc.constantFrom(...PORTS) }),
    { nil: null },
  );

  it("leaves each uplink with exactly its rule to the edge's port and its table's route, or with neither; replanned, nothing", () => {
    fc.assert(
      fc.property(host, fc.tuple(path, path, path), pin, (h, paths, p) => {
        const tables = new Map(TABLES.map((t, i) => [t, h.tables[i]!]));
        const k = { rules: h.rules.map((r) => ({ ...r })), tables };
        const targets: Ipv6Target[] = TABLES.map((table, i) => ({ table, path: paths[i]! }));
        for (const step of planIpv6Routing(k, targets, p)) applyStep(k, 6, step);
        for (const { table, path: want } of targets) {
          const rules = k.rules.filter((r) => r.priority === table).map(canonical);
          const routes = tables.get(table) ?? [];
          if (want === null || p === null) {
            expect(rules).toEqual([]);
            expect(routes).toEqual([]);
          } else {
            expect(rules).toEqual(expected(table, want.source, p));
            expect(routes).toEqual([{ dst: "default", gateway: want.gateway, dev: want.interface }]);
          }
        }
        expect(k.rules.filter((r) => !TABLES.includes(r.priority))).toEqual(
          h.rules.filter((r) => !TABLES.includes(r.priority)),
        );
        expect(planIpv6Routing(k, targets, p)).toEqual([]);
      }),
      { numRuns: 500 },
    );
  });

  it("pins only the agent's connections to the edge: its address and port, TCP", () => {
    const steps = planIpv6Routing(
      { rules: [], tables: new Map() },
      [{ table: 1101, path: { interface: "eth0", source: "2001:db8:1::21", gateway: "fe80::1" } }],
      { edge: ["2001:db8:ff::10"], port: 443 },
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
        "ipproto",
        "6",
        "dport",
        "443",
        "lookup",
        "1101",
        "priority",
        "1101",
      ],
    ]);
  });
});
