// `agent install --enroll`: the flags an enrolment token decides (site, agent, role, the uplinks),
// and what this host can tell about each uplink, all settled before the token is spent.
import { networkInterfaces } from "node:os";
import type { EnrolmentGrant } from "#shared";
import { realHost } from "../config/load.ts";
import { UsageError } from "../lib/errors.ts";
import { defaultRouteInterface, defaultRoutes, nmConnection } from "./detect.ts";

type Values = Record<string, string | string[] | boolean | undefined>;

/** The flags the token decides, and the uplinks' interfaces and connections this host can tell. */
export async function enrolledFlags(g: EnrolmentGrant, v: Values): Promise<{ flags: Values; found: string[] }> {
  const given = Array.isArray(v.uplink) ? v.uplink : [];
  const ids = given.map((u) => u.split("=", 1)[0]!);
  const expected = g.role === "probe" ? [g.uplink!] : g.uplinks;
  const stray = ids.find((id) => !expected.includes(id));
  if (stray)
    throw new UsageError(
      `--uplink ${stray}: agent ${g.agent} ${g.role === "probe" ? `sits behind ${g.uplink} only` : `uses the uplinks of site ${g.site}: ${expected.join(", ")}`}`,
    );
  const routes = defaultRoutes();
  if (g.role === "server") {
    const missing = expected.filter((id) => !ids.includes(id));
    if (missing.length)
      throw new UsageError(
        [
          `a server names its interface to every uplink of site ${g.site}: add ${missing.map((id) => `--uplink ${id}=IFACE`).join(" ")}`,
          routes.length
            ? `(this host's default routes: ${routes.map((r) => `${r.interface}${r.gateway ? ` via ${r.gateway}` : ""}, metric ${r.metric}`).join("; ")})`
            : "",
        ]
          .filter(Boolean)
          .join(" "),
      );
  }
  for (const u of given) {
    const iface = u.slice(u.indexOf("=") + 1);
    if (u.includes("=") && !realHost.interfaceExists(iface))
      throw new UsageError(
        `--uplink ${u}: this host has no interface "${iface}" (it has ${Object.keys(networkInterfaces()).join(", ")})`,
      );
  }
  const uplinks = given.length ? given : [g.uplink!];
  const connections = Array.isArray(v.connection) ? [...v.connection] : [];
  const found: string[] = [];
  for (const u of uplinks) {
    const id = u.split("=", 1)[0]!;
    const iface = u.includes("=") ? u.slice(u.indexOf("=") + 1) : defaultRouteInterface();
    if (!iface) continue; // configFromFlags names the problem
    const route = routes.find((r) => r.interface === iface);
    let connection = connections.find((c) => c.startsWith(`${id}=`))?.slice(id.length + 1) ?? null;
    if (!connection && (connection = await nmConnection(iface))) connections.push(`${id}=${connection}`);
    found.push(
      `${id}: interface ${iface}${u.includes("=") ? "" : " (the default route's)"}${route?.gateway ? `, router ${route.gateway}` : ", no default route through it"}${connection ? `, NetworkManager connection "${connection}"` : ""}`,
    );
  }
  return {
    flags: {
      ...v,
      site: g.site,
      agent: g.agent,
      role: g.role,
      uplink: uplinks,
      ...(connections.length ? { connection: connections } : {}),
    },
    found,
  };
}
