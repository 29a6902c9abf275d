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
  table: z.string().optional(),
});
export type Rule = z.infer<typeof Rule>;

const Link = z.looseObject({
  ifname: z.string(),
  addr_info: z
    .array(
      z.looseObject({ family: z.string(), local: z.string(), prefixlen: z.number(), scope: z.string().optional() }),
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

/** Routes of one table (main by default), IPv4 unless asked for IPv6. */
export function routes(table: number | "main" = "main", family: Family = 4): Promise<Route[]> {
  return json(["ip", "-j", `-${family}`, "route", "show", "table", String(table)], z.array(Route));
}

/** Default routes of one table, lowest metric first (the one the kernel uses). */
export async function defaultRoutes(table: number | "main" = "main", family: Family = 4): Promise<Route[]> {
  const all = await routes(table, family);
  return all.filter((r) => r.dst === "default").sort((a, b) => (a.metric ?? 0) - (b.metric ?? 0));
}

export function rules(): Promise<Rule[]> {
  return json(["ip", "-j", "-4", "rule", "show"], z.array(Rule));
}

/** The interface's first global IPv4 address with its prefix length, or null. */
export async function ipv4Address(dev: string): Promise<{ address: string; prefixlen: number } | null> {
  let links: z.infer<typeof Link>[];
  try {
    links = await json(["ip", "-j", "-4", "addr", "show", "dev", dev], z.array(Link));
  } catch (err) {
    if (/does not exist|Cannot find device/i.test(String((err as Error).message)))
      throw new Error(`interface ${dev} does not exist`);
    throw err;
  }
  const a = links[0]?.addr_info.find((i) => i.family === "inet" && (i.scope ?? "global") === "global");
  return a ? { address: a.local, prefixlen: a.prefixlen } : null;
}

/** The interface a new connection to `dst` would leave through (what `ip route get` says). */
export async function routeGet(dst: string, from?: string): Promise<Route> {
  const r = await json(["ip", "-j", "-4", "route", "get", dst, ...(from ? ["from", from] : [])], z.array(Route).min(1));
  return r[0]!;
}

/** Runs one `ip` change (argv after `ip`). */
export async function ip(...args: string[]): Promise<void> {
  await run(["ip", ...args], { timeoutMs: 5_000 });
}
