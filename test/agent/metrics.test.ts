// The route plan of the iproute2 backend: pure, so its safety rules are checked on every shape.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { UplinkConfig } from "../../agent/src/config/schema.ts";
import type { Route } from "../../agent/src/host/ip.ts";
import { ACTIVE_METRIC, desiredMetric, planDefaultRoutes, type RouteTarget } from "../../agent/src/host/metrics.ts";
import { OWN_METRIC, ownRouteOff, planOwnRoute } from "../../agent/src/host/own-route.ts";

const uplinks: UplinkConfig[] = [1, 2, 3].map((n) => ({
  id: `isp${n}`,
  interface: `lan${n}`,
  gateway: `192.168.${n}.1`,
}));
const targetsFor = (active: string): RouteTarget[] =>
  uplinks.map((u) => ({
    uplink: u.id,
    dev: u.interface,
    gateway: u.gateway!,
    metric: desiredMetric(uplinks, u.id, active),
  }));

/** What the kernel's main table holds after running the plan (replace = add or update by dev+metric). */
function applyPlan(routes: Route[], plan: string[][]): Route[] {
  let rs = [...routes];
  for (const argv of plan) {
    const dev = argv[argv.indexOf("dev") + 1]!;
    const metric = Number(argv[argv.indexOf("metric") + 1]);
    const gateway = argv.includes("via") ? argv[argv.indexOf("via") + 1] : undefined;
    rs = rs.filter(
      (r) => !(r.dst === "default" && (r.metric ?? 0) === metric && (argv[1] === "del" ? r.dev === dev : true)),
    );
    if (argv[1] === "replace") rs.push({ dst: "default", dev, gateway, metric });
    // Never without a default route, at any step.
    expect(rs.some((r) => r.dst === "default")).toBe(true);
  }
  return rs;
}

const route = fc.record({
  dst: fc.constant("default"),
  dev: fc.constantFrom("lan1", "lan2", "lan3", "wg0"),
  gateway: fc.constantFrom("192.168.1.1", "192.168.2.1", "192.168.3.1", "10.0.0.1"),
  // The kernel holds one default route per metric (`ip route add` refuses a second).
  metric: fc.constantFrom(0, 50, 100, 101, 200, 201, 202, 600),
});

describe("default route plan (iproute2 backend)", () => {
  it("the active uplink gets the lowest metric, the others keep their order", () => {
    expect(desiredMetric(uplinks, "isp2", "isp2")).toBe(ACTIVE_METRIC);
    expect(desiredMetric(uplinks, "isp1", "isp2")).toBeLessThan(desiredMetric(uplinks, "isp3", "isp2"));
    expect(desiredMetric(uplinks, "isp1", "isp2")).toBeGreaterThan(ACTIVE_METRIC);
  });

  it("reaches the target from any starting table, never without a default route, and is then idempotent", () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(route, { minLength: 1, maxLength: 6, selector: (r) => r.metric }),
        fc.constantFrom("isp1", "isp2", "isp3"),
        (start, active) => {
          const targets = targetsFor(active);
          const after = applyPlan(start, planDefaultRoutes(start, targets));
          for (const t of targets)
            expect(after).toContainEqual({ dst: "default", dev: t.dev, gateway: t.gateway, metric: t.metric });
          // Managed interfaces keep exactly their target route; unmanaged ones are left alone.
          expect(after.filter((r) => r.dev !== "wg0")).toHaveLength(targets.length);
          expect(after.filter((r) => r.dev === "wg0")).toEqual(
            start.filter((r) => r.dev === "wg0" && !after.some((a) => a.dev !== "wg0" && a.metric === r.metric)),
          );
          expect(planDefaultRoutes(after, targets)).toEqual([]);
        },
      ),
      { numRuns: 500 },
    );
  });

  it("adds the active route before deleting anything", () => {
    const start: Route[] = [
      { dst: "default", dev: "lan1", gateway: "192.168.1.1", metric: 100 },
      { dst: "default", dev: "lan2", gateway: "192.168.2.1", metric: 101 },
    ];
    const plan = planDefaultRoutes(start, targetsFor("isp2"));
    expect(plan[0]).toEqual(["route", "replace", "default", "via", "192.168.2.1", "dev", "lan2", "metric", "100"]);
    expect(plan.findIndex((a) => a[1] === "del")).toBeGreaterThan(plan.findIndex((a) => a[1] === "replace"));
  });
});

describe.each([4, 6] as const)("the agent's own IPv%i default route (nmcli backend)", (family) => {
  const gw = (dev: string) => (family === 6 ? `fe80::${dev.slice(3)}` : `192.168.${dev.slice(3)}.1`);
  // What NetworkManager installs (from DHCP, from advertisements): at most one route per uplink, at its profile's metric.
  const learned = fc
    .subarray(["lan1", "lan2", "lan3"])
    .chain((devs) =>
      fc.tuple(
        ...devs.map((dev) =>
          fc.constantFrom(100, 101, 102, 1024).map((metric) => ({ dst: "default", dev, gateway: gw(dev), metric })),
        ),
      ),
    );
  const own = fc.option(
    fc
      .constantFrom("lan1", "lan2", "lan3")
      .map((dev) => ({ dst: "default", dev, gateway: gw(dev), metric: OWN_METRIC })),
    { nil: undefined },
  );

  it("leads IPv6 through the active uplink when it has IPv6, else leaves NetworkManager's order; then idempotent", () => {
    fc.assert(
      fc.property(learned, own, fc.constantFrom("isp1", "isp2", "isp3"), (nm, mine, active) => {
        const start: Route[] = [...(mine ? [mine] : []), ...nm].filter(
          (r, i, all) => all.findIndex((x) => x.metric === r.metric) === i,
        );
        const plan = planOwnRoute(start, uplinks, active, family);
        const after = applyPlan(
          start.length ? start : [],
          plan.map((argv) => (family === 6 ? argv.slice(1) : argv)),
        );
        const dev = uplinks.find((u) => u.id === active)!.interface;
        const best = [...after].sort((a, b) => (a.metric ?? 0) - (b.metric ?? 0))[0];
        if (start.some((r) => r.dev === dev && r.metric !== OWN_METRIC))
          expect(best).toEqual({ dst: "default", dev, gateway: gw(dev), metric: OWN_METRIC });
        else if (nm.length)
          // No learned route on the active uplink: the agent's goes, but for IPv4 on the active
          // uplink itself (its gateway still routes while a lease is not yet in).
          expect(after.filter((r) => r.metric === OWN_METRIC && (family === 6 || r.dev !== dev))).toEqual([]);
        else expect(after).toEqual(start);
        // NetworkManager's own routes are never touched.
        expect(after.filter((r) => r.metric !== OWN_METRIC)).toEqual(start.filter((r) => r.metric !== OWN_METRIC));
        expect(planOwnRoute(after, uplinks, active, family)).toEqual([]);
      }),
      { numRuns: 500 },
    );
  });
});

describe("which router the agent's own route follows on the active uplink", () => {
  const routers = ["fe80::a", "fe80::b", "fe80::c"];
  // Advertised routes of one LAN: a router replaced (new link-local address) leaves its route behind
  // until its lifetime runs out, while the live router's is renewed by every advertisement.
  const advertised = fc.uniqueArray(fc.constantFrom(...routers), { minLength: 1, maxLength: 3 }).chain((gws) =>
    fc.tuple(
      ...gws.map((gateway) =>
        fc.option(fc.constantFrom(100, 1000, 1481, 1700, 1750, 1799), { nil: undefined }).map((expires) => ({
          dst: "default",
          dev: "lan1",
          gateway,
          metric: 1024,
          ...(expires ? { expires } : {}),
        })),
      ),
    ),
  );
  const ownVia = fc.option(fc.constantFrom(...routers), { nil: undefined });
  const left = (r: Route) => r.expires ?? Number.POSITIVE_INFINITY;

  it("never more than a minute staler than the freshest router, and it stays on a router that keeps up", () => {
    fc.assert(
      fc.property(advertised, ownVia, (ra, via) => {
        const own = via ? [{ dst: "default", dev: "lan1", gateway: via, metric: OWN_METRIC }] : [];
        const plan = planOwnRoute([...own, ...ra], uplinks, "isp1", 6);
        const chosen = plan.length ? plan[0]![plan[0]!.indexOf("via") + 1] : via;
        const freshest = Math.max(...ra.map(left));
        const used = ra.find((r) => r.gateway === chosen);
        expect(used, `the agent's route via ${chosen}, a router with no route of its own`).toBeDefined();
        expect(left(used!)).toBeGreaterThanOrEqual(freshest - 60);
        const before = ra.find((r) => r.gateway === via);
        if (before && left(before) >= freshest - 60) expect(chosen).toBe(via);
        // The host reads as drifted exactly when the route has to move or be added, so a re-apply does it.
        expect(ownRouteOff([...own, ...ra])).toBe(via === undefined || chosen !== via);
      }),
      { numRuns: 500 },
    );
  });

  it("leaves an uplink whose router stopped being a default router (router lifetime 0) for the others' IPv6", () => {
    const own: Route = { dst: "default", dev: "lan1", gateway: "fe80::1", metric: OWN_METRIC };
    const isp2: Route = { dst: "default", dev: "lan2", gateway: "fe80::2", metric: 1024, expires: 1700 };
    expect(ownRouteOff([own, isp2])).toBe(true);
    expect(planOwnRoute([own, isp2], uplinks, "isp1", 6)).toEqual([
      ["-6", "route", "del", "default", "dev", "lan1", "metric", String(OWN_METRIC)],
    ]);
    // The only default route stays, as does IPv4's while a lease is not yet in.
    expect(ownRouteOff([own])).toBe(false);
    // No route of the agent's while routers are learned: off too (a re-apply adds one for the active uplink).
    expect(ownRouteOff([isp2])).toBe(true);
    const own4: Route = { dst: "default", dev: "lan1", gateway: "192.168.1.1", metric: OWN_METRIC };
    expect(
      planOwnRoute([own4, { dst: "default", dev: "lan2", gateway: "192.168.2.1", metric: 200 }], uplinks, "isp1", 4),
    ).toEqual([]);
  });

  it("leaves a replaced router's route for the one heard last (the lab's router rebuilt)", () => {
    const ra: Route[] = [
      { dst: "default", dev: "lan1", gateway: "fe80::old", metric: 1024, expires: 1481 },
      { dst: "default", dev: "lan2", gateway: "fe80::2", metric: 1024, expires: 1797 },
      { dst: "default", dev: "lan1", gateway: "fe80::new", metric: 1024, expires: 1799 },
    ];
    const own: Route = { dst: "default", dev: "lan2", gateway: "fe80::2", metric: OWN_METRIC };
    expect(planOwnRoute([own, ...ra], uplinks, "isp1", 6)).toEqual([
      ["-6", "route", "replace", "default", "via", "fe80::new", "dev", "lan1", "metric", String(OWN_METRIC)],
    ]);
  });
});
