// Reads the kernel's routing state through `ip -j` (JSON), validated so a changed iproute2 output
// fails loudly instead of being misread.
import { z } from "zod";
import { run } from "./exec.ts";

const Route = z.looseObject({
  dst: z.string(),
  gateway: z.string().optional(),
  dev: z.string().optional(),
  metric: z.number().optional(),
  prefsrc: z.string().optional(),
  protocol: z.string().optional(),
  scope: z.string().optional(),
  flags: z.array(z.string()).optional(),
  /** Seconds left, on a route a router advertisement installed (IPv6). */
  expires: z.number().optional(),
});
export type Route = z.infer<typeof Route>;
export type Family = 4 | 6;

const Rule = z.looseObject({
  priority: z.number(),
  src: z.string().optional(),
  srclen: z.number().optional(),
  dst: z.string().optional(),
  dstlen: z.number().optional(),
  ipproto: z.string().optional(),
  dport: z.number().optional(),
  table: z.string().optional(),
});
export type Rule = z.infer<typeof Rule>;

const Link = z.looseObject({
  ifname: z.string(),
  addr_info: z
    .array(
      z.looseObject({
        family: z.string(),
        local: z.string(),
        prefixlen: z.number(),
        scope: z.string().optional(),
        tentative: z.boolean().optional(),
        dadfailed: z.boolean().optional(),
        preferred_life_time: z.number().optional(),
      }),
    )
    .default([]),
});

async function json<T>(argv: string[], schema: z.ZodType<T>): Promise<T> {
  const out = await run(argv, { timeoutMs: 5_000 });
  // `ip -j` prints nothing at all for an empty table.
  const parsed = schema.safeParse(out.trim() === "" ? [] : JSON.parse(out));
  if (!parsed.success)
    throw new Error(`unexpected output from \`${argv.join(" ")}\`: ${parsed.error.issues[0]?.message ?? "invalid"}`);
  return parsed.data;
}

/** Routes of one table (main by default), IPv4 unless asked for IPv6; a table never filled has none. */
export async function routes(table: number | "main" = "main", family: Family = 4): Promise<Route[]> {
  try {
    return await json(["ip", "-j", `-${family}`, "route", "show", "table", String(table)], z.array(Route));
  } catch (err) {
    // The kernel has no such table until a route goes in (IPv6: "Dump terminated").
    if (table !== "main" && /Dump terminated|table does not exist/i.test(String((err as Error).message))) return [];
    throw err;
  }
}

/** Default routes of one table, lowest metric first (the one the kernel uses). */
export async function defaultRoutes(table: number | "main" = "main", family: Family = 4): Promise<Route[]> {
  const all = await routes(table, family);
  return all.filter((r) => r.dst === "default").sort((a, b) => (a.metric ?? 0) - (b.metric ?? 0));
}

export function rules(family: Family = 4): Promise<Rule[]> {
  return json(["ip", "-j", `-${family}`, "rule", "show"], z.array(Rule));
}

async function addresses(dev: string, family: Family): Promise<z.infer<typeof Link>["addr_info"]> {
  try {
    return (await json(["ip", "-j", `-${family}`, "addr", "show", "dev", dev], z.array(Link)))[0]?.addr_info ?? [];
  } catch (err) {
    if (/does not exist|Cannot find device/i.test(String((err as Error).message)))
      throw new Error(`interface ${dev} does not exist`);
    throw err;
  }
}

/** The interface's first global IPv4 address with its prefix length, or null. */
export async function ipv4Address(dev: string): Promise<{ address: string; prefixlen: number } | null> {
  const a = (await addresses(dev, 4)).find((i) => i.family === "inet" && (i.scope ?? "global") === "global");
  return a ? { address: a.local, prefixlen: a.prefixlen } : null;
}

/**
 * The interface's first usable global IPv6 address (past duplicate detection, still preferred; not
 * a unique local fc00::/7 one, which reaches no internet), or null.
 */
export async function ipv6Address(dev: string): Promise<string | null> {
  const a = (await addresses(dev, 6)).find(
    (i) =>
      i.family === "inet6" &&
      i.scope === "global" &&
      !/^f[cd]/i.test(i.local) &&
      !i.tentative &&
      !i.dadfailed &&
      (i.preferred_life_time ?? 1) > 0,
  );
  return a?.local ?? null;
}

/**
 * The interface a new connection to `dst` would leave through (what `ip route get` says); from a
 * source address, to a TCP port (which policy rules may select on).
 */
export async function routeGet(dst: string, o: { from?: string; port?: number } = {}): Promise<Route> {
  const argv = ["ip", "-j", "-4", "route", "get", dst, ...(o.from ? ["from", o.from] : [])];
  if (o.port !== undefined) argv.push("ipproto", "6", "dport", String(o.port)); // TCP by number, as the rules
  const r = await json(argv, z.array(Route).min(1));
  return r[0]!;
}

/** Runs one `ip` change (argv after `ip`). */
export async function ip(...args: string[]): Promise<void> {
  await run(["ip", ...args], { timeoutMs: 5_000 });
}

/**
 * Runs `ip` changes (argv lists after `ip`) in order as one `ip -batch`: one process instead of one
 * each (each costs tens of ms on a loaded host, on the failover's path); it stops at the first
 * that fails, as running them one by one would.
 */
export async function ipBatch(changes: readonly string[][], signal?: AbortSignal): Promise<void> {
  if (!changes.length) return;
  await run(["ip", "-batch", "-"], { input: `${changes.map(batchLine).join("\n")}\n`, timeoutMs: 5_000, signal });
}

/** A batch line takes no options: `-6 route … default …` is `route … ::/0 …` (the family from the address). */
function batchLine(argv: readonly string[]): string {
  return (argv[0] === "-6" ? argv.slice(1).map((a) => (a === "default" ? "::/0" : a)) : argv).join(" ");
}
