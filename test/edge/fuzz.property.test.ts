// Every endpoint and message type, fed thousands of generated inputs. Three properties:
// 1. never a 5xx or a crash: a refusal is a 4xx in the error envelope, naming the field;
// 2. a refused input changes nothing, in SQLite (every row) or in memory (the status);
// 3. generated valid inputs are accepted, so the fuzzer is not just refused at the door.
// The seed is fixed, so a failure replays exactly; fast-check prints the seed and the shrunk input.
import fc from "fast-check";
import { afterAll, describe, expect, it } from "vitest";
import {
  ApiError,
  EdgeMessage,
  HEADER_AGENT,
  HEADER_SIG,
  HEADER_TS,
  HEADER_UPLINK,
  MAX_HEARTBEAT_BYTES,
  MAX_SKEW_MS,
  SiteConfig,
  SiteStatus,
  UplinkState,
  formatPath,
  sign,
  verify,
  type SiteConfigInput,
} from "#shared";
import { MAX_ADMIN_BODY_BYTES } from "../../worker/src/http/body.ts";
import {
  ADMIN,
  BASE,
  Channel,
  TestAgent,
  VIEWER,
  call,
  createSite,
  edgeClock,
  send,
  status,
  storedRows,
  twoUplinks,
} from "./support.ts";

// After the real date, so no alarm of a site fires on its own while the fuzzer runs.
const at = edgeClock(Date.UTC(2030, 0, 1));

const SEED = 20_261_202;
const runs = (numRuns: number) => ({ numRuns, seed: SEED });
const TIMEOUT = 60_000;

const tried = new Map<string, number>();
afterAll(() => {
  const total = [...tried.values()].reduce((a, b) => a + b, 0);
  console.log(`fuzz: ${total} inputs: ${[...tried].map(([k, n]) => `${k} ${n}`).join(", ")}`);
});

type Body = string | Uint8Array | undefined;
const enc = new TextEncoder();

/** Sends one generated input, counted under its endpoint. */
async function fuzz(
  endpoint: string,
  method: string,
  path: string,
  body: Body,
  headers: Record<string, string | undefined>,
) {
  tried.set(endpoint, (tried.get(endpoint) ?? 0) + 1);
  const h = new Headers();
  for (const [k, v] of Object.entries(headers)) if (v !== undefined) h.set(k, v);
  // Text goes out as UTF-8, as from any client (lone surrogates become U+FFFD).
  const r = await send(
    new Request(`${BASE}${path}`, { method, headers: h, body: typeof body === "string" ? enc.encode(body) : body }),
  );
  // A socket nobody reads would hold the object open.
  if (r.webSocket) {
    r.webSocket.accept();
    r.webSocket.close(1000, "fuzz");
  }
  return r;
}

const admin = { authorization: `Bearer ${ADMIN}`, "content-type": "application/json" };

// ---- values -----------------------------------------------------------------------------------

/** JSON text JSON.stringify cannot make: numbers out of double range, very deep nesting. */
class Raw {
  constructor(readonly text: string) {}
}

function toJson(v: unknown): string {
  const raws: string[] = [];
  const text = JSON.stringify(v, (_k, x) => (x instanceof Raw ? `\u0001raw${raws.push(x.text) - 1}\u0001` : x));
  return text.replace(/"\\u0001raw(\d+)\\u0001"/g, (_m, i: string) => raws[Number(i)]!);
}

/** A copy of `v` with the value at `path` replaced (an own property even for "__proto__"), or removed. */
function setIn(v: unknown, path: readonly (string | number)[], value: unknown, remove = false): unknown {
  if (!path.length) return value;
  const [head, ...rest] = path;
  const copy: any = Array.isArray(v) ? [...v] : { ...(v as object) };
  if (remove && !rest.length) delete copy[head!];
  else
    Object.defineProperty(copy, head!, {
      value: setIn(copy[head!], rest, value, remove),
      enumerable: true,
      writable: true,
      configurable: true,
    });
  return copy;
}

const nastyKey = fc.oneof(
  fc.constantFrom(
    "__proto__",
    "constructor",
    "prototype",
    "toString",
    "hasOwnProperty",
    "",
    " ",
    "\u0000",
    "\ud800",
    "🛰️",
    "a.b",
    "[0]",
    "İd",
  ),
  fc.string({ unit: "binary", minLength: 1, maxLength: 12 }),
);
const nastyString = fc.oneof(
  fc.string({ unit: "binary", maxLength: 24 }),
  fc.constantFrom(
    "",
    " ",
    "\u0000",
    "a\u0000b",
    "\ud800",
    "\udfff\ud800",
    "\u202eevil",
    "İ",
    "🛰️",
    "\ufeff",
    "__proto__",
    "constructor",
    "..",
    "%2F",
    "null",
    "NaN",
  ),
  fc.integer({ min: 600, max: 9_000 }).map((n) => "x".repeat(n)),
);
const deepArray = fc.integer({ min: 1, max: 3_000 }).map((d) => new Raw("[".repeat(d) + "]".repeat(d)));
const deep = fc.oneof(
  deepArray,
  fc.integer({ min: 1, max: 3_000 }).map((d) => new Raw(`${'{"a":'.repeat(d)}1${"}".repeat(d)}`)),
);
const someArray = fc.array(fc.oneof(fc.integer(), fc.string(), fc.constant(null)), { maxLength: 3 });
const someObject = fc.dictionary(nastyKey, fc.oneof(fc.integer(), fc.string()), { maxKeys: 3 });
const notString = fc.oneof(fc.integer(), fc.double(), fc.boolean(), fc.constant(null), someArray, someObject, deep);
const notNumber = fc.oneof(
  nastyString,
  fc.boolean(),
  fc.constant(null),
  someArray,
  someObject,
  deep,
  fc.constantFrom("1", "0", "1e3"),
);
const notBoolean = fc.oneof(
  nastyString,
  fc.integer(),
  fc.constant(null),
  someArray,
  someObject,
  fc.constantFrom("true", "false", 0, 1),
);
const notObject = fc.oneof(nastyString, fc.integer(), fc.boolean(), fc.constant(null), someArray, deepArray);
const notArray = fc.oneof(nastyString, fc.integer(), fc.boolean(), fc.constant(null), someObject);

/** Wrong for a number field bounded by [min, max] (null too, unless the field is nullable). */
function badNumber(min: number, max: number, opts: { int?: boolean; nullable?: boolean } = {}) {
  const { int = true, nullable = false } = opts;
  return fc.oneof(
    nullable ? notNumber.filter((x) => x !== null) : notNumber,
    fc.constantFrom(min - 1, max + 1, -Number.MAX_VALUE, Number.MAX_VALUE, new Raw("1e400"), new Raw("-1e400")),
    fc.integer({ min: Number.MIN_SAFE_INTEGER, max: min - 1 }),
    fc
      .integer({ min: Math.min(max + 1, Number.MAX_SAFE_INTEGER), max: Number.MAX_SAFE_INTEGER })
      .map((x) => (x > max ? x : x + 2)),
    ...(int ? [fc.double({ min, max, noNaN: true, noInteger: true })] : []),
  );
}
const tooLong = (max: number) => fc.integer({ min: max + 1, max: max + 300 }).map((n) => "é".repeat(n));
const badEnum = (values: readonly string[]) =>
  fc.oneof(
    notString,
    nastyString.filter((s) => !values.includes(s)),
    fc.constantFrom(...values.flatMap((v) => [v.toUpperCase(), ` ${v}`, `${v} `, `${v}\u0000`])),
  );
const badId = (re: RegExp) =>
  fc.oneof(
    notString,
    fc.string({ unit: "binary", maxLength: 70 }).filter((s) => !re.test(s)),
    fc.constantFrom("", "ISP1", "-a", "a_b", "a b", "a\n", "a\u0000", "a".repeat(64), "İsp", "__proto__", "a/b", ".."),
  );

const UPLINK_ID = /^[a-z0-9][a-z0-9-]{0,31}$/;
const AGENT_ID = /^[a-z0-9][a-z0-9-]{0,62}$/;
const int = (min: number, max: number) => fc.integer({ min, max });
// "constructor" is a fine id and also a member of every object's prototype.
const uplinkId = fc.oneof(
  { arbitrary: fc.stringMatching(UPLINK_ID), weight: 4 },
  { arbitrary: fc.constantFrom("constructor", "isp1", "isp2", "0", "a".repeat(32)), weight: 1 },
);
const agentId = fc.oneof(
  { arbitrary: fc.stringMatching(AGENT_ID), weight: 4 },
  { arbitrary: fc.constantFrom("constructor", "a".repeat(63)), weight: 1 },
);
const escapeLoneSurrogates = (s: string) =>
  s.replace(
    /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16)}`,
  );
/** No lone surrogate: a URL carries one as U+FFFD. */
const wellFormed = (s: string) => escapeLoneSurrogates(s) === s;
const text = (min: number, max: number) =>
  fc.string({ unit: "binary", minLength: min, maxLength: max }).filter((s) => s.length <= max);

// ---- site config ------------------------------------------------------------------------------

const policy = int(250, 60_000).chain((heartbeatMs) =>
  fc.record({
    heartbeatMs: fc.constant(heartbeatMs),
    downAfterMs: int(Math.max(500, 2 * heartbeatMs), 600_000),
    failbackAfterMs: int(0, 86_400_000),
    minDwellMs: int(0, 3_600_000),
  }),
);
const url = fc
  .tuple(fc.constantFrom("http", "https"), fc.domain(), fc.stringMatching(/^[a-z0-9/_-]{0,40}$/))
  .map(([s, host, path]) => `${s}://${host}/${path}`);
const notifyTarget = fc.record({ kind: fc.constantFrom("webhook", "slack", "discord", "ntfy"), url });
const uplinks = (min: number, max: number) =>
  int(min, max).chain((n) =>
    fc
      .tuple(
        fc.uniqueArray(uplinkId, { minLength: n, maxLength: n }),
        fc.uniqueArray(int(1, 99), { minLength: n, maxLength: n }),
        fc.array(fc.record({ name: text(1, 64), metered: fc.boolean() }, { requiredKeys: [] }), {
          minLength: n,
          maxLength: n,
        }),
      )
      .map(([ids, prios, extra]) => ids.map((id, i) => ({ id, priority: prios[i]!, ...extra[i] }))),
  );

/** Any valid config, defaults left out at random. */
const validConfig: fc.Arbitrary<SiteConfigInput> = fc
  .record(
    {
      uplinks: uplinks(2, 8),
      policy: policy.chain((p) =>
        fc.subarray(Object.keys(p) as (keyof typeof p)[]).map((keep) => Object.fromEntries(keep.map((k) => [k, p[k]]))),
      ),
      tunnels: fc.record(
        { restart: fc.constantFrom("cluster", "per-server", "none"), maxWaitMs: int(1_000, 600_000) },
        { requiredKeys: [] },
      ),
      notify: fc.array(notifyTarget, { maxLength: 10 }),
    },
    { requiredKeys: ["uplinks"] },
  )
  // Left-out fields take their defaults: keep only policies that are valid with them.
  .filter(
    (c) => (c.policy?.downAfterMs ?? 3_000) >= 2 * (c.policy?.heartbeatMs ?? 1_000),
  ) as fc.Arbitrary<SiteConfigInput>;

/** Every field present, so that every field can be broken. */
const fullConfig = fc.record({
  uplinks: uplinks(2, 4).map((us) => us.map((u) => ({ name: "n", metered: false, ...u }))),
  policy,
  tunnels: fc.record({ restart: fc.constantFrom("cluster", "per-server", "none"), maxWaitMs: int(1_000, 600_000) }),
  notify: fc.array(notifyTarget, { minLength: 1, maxLength: 3 }),
});

interface Broken {
  body: unknown;
  /** The issue path the answer must name. */
  path: string;
}
type Path = (string | number)[];
const broken = (base: unknown, path: Path, bad: fc.Arbitrary<unknown>): fc.Arbitrary<Broken> =>
  bad.map((value) => ({ body: setIn(base, path, value), path: formatPath(path) }));
const removed = (base: unknown, path: Path): Broken => ({
  body: setIn(base, path, undefined, true),
  path: formatPath(path),
});
/** An unknown key in the object at `at`; zod reports it there, and the envelope names the key itself. */
const extraKey = (base: unknown, at: Path) =>
  fc
    .tuple(
      nastyKey.filter((k) => !Object.hasOwn(at.reduce((o: any, k) => o[k], base) as object, k)),
      fc.jsonValue({ maxDepth: 2 }),
    )
    .map(([k, v]) => ({ body: setIn(base, [...at, k], v), path: formatPath([...at, k]) }));

const brokenConfig: fc.Arbitrary<Broken> = fullConfig.chain((c) => {
  const n = c.uplinks.length;
  const i = int(0, n - 1);
  const ij = fc
    .uniqueArray(int(0, n - 1), { minLength: 2, maxLength: 2 })
    .map(([a, b]) => [Math.min(a!, b!), Math.max(a!, b!)] as const);
  const nine = Array.from({ length: 9 }, (_, k) => ({ id: `u${k}`, priority: k + 1 }));
  const limits = {
    heartbeatMs: [250, 60_000],
    downAfterMs: [500, 600_000],
    failbackAfterMs: [0, 86_400_000],
    minDwellMs: [0, 3_600_000],
  } as const;
  return fc.oneof(
    broken(c, [], notObject),
    broken(c, ["uplinks"], fc.oneof(notArray, fc.constantFrom([], [c.uplinks[0]], nine))),
    i.chain((k) => broken(c, ["uplinks", k], notObject)),
    i.chain((k) => broken(c, ["uplinks", k, "id"], badId(UPLINK_ID))),
    i.chain((k) => broken(c, ["uplinks", k, "priority"], badNumber(1, 99))),
    i.chain((k) => broken(c, ["uplinks", k, "name"], fc.oneof(notString, fc.constant(""), tooLong(64)))),
    i.chain((k) => broken(c, ["uplinks", k, "metered"], notBoolean)),
    i.chain((k) => fc.constantFrom(removed(c, ["uplinks", k, "id"]), removed(c, ["uplinks", k, "priority"]))),
    ij.map(([a, b]) => ({
      body: setIn(c, ["uplinks", b, "id"], c.uplinks[a]!.id),
      path: formatPath(["uplinks", b, "id"]),
    })),
    ij.map(([a, b]) => ({
      body: setIn(c, ["uplinks", b, "priority"], c.uplinks[a]!.priority),
      path: formatPath(["uplinks", b, "priority"]),
    })),
    broken(c, ["policy"], notObject),
    fc
      .constantFrom(...Object.entries(limits))
      .chain(([k, [min, max]]) => broken(c, ["policy", k], badNumber(min, max))),
    int(251, 60_000).map((hb) => ({
      body: setIn(c, ["policy"], { ...c.policy, heartbeatMs: hb, downAfterMs: Math.max(500, 2 * hb - 1) }),
      path: "policy.downAfterMs",
    })),
    broken(c, ["tunnels"], notObject),
    broken(c, ["tunnels", "restart"], badEnum(["cluster", "per-server", "none"])),
    broken(c, ["tunnels", "maxWaitMs"], badNumber(1_000, 600_000)),
    broken(c, ["notify"], fc.oneof(notArray, fc.constant(Array.from({ length: 11 }, () => c.notify[0])))),
    broken(c, ["notify", 0], notObject),
    broken(c, ["notify", 0, "kind"], badEnum(["webhook", "slack", "discord", "ntfy"])),
    broken(
      c,
      ["notify", 0, "url"],
      fc.oneof(
        notString,
        fc.constantFrom(
          "",
          "nope",
          "ftp://x.test/",
          "javascript:alert(1)",
          "//x.test/a",
          "file:///etc/passwd",
          "http://",
          `https://x.test/${"a".repeat(2_100)}`,
        ),
      ),
    ),
    fc.constantFrom(removed(c, ["uplinks"]), removed(c, ["notify", 0, "url"]), removed(c, ["notify", 0, "kind"])),
    fc.constantFrom<Path[]>([], ["policy"], ["tunnels"], ["uplinks", 0], ["notify", 0]).chain((at) => extraKey(c, at)),
  );
});

// ---- raw bodies (every JSON endpoint) ---------------------------------------------------------

interface RawBody {
  body: Body;
  contentType?: string;
  /** The status and code it must get. */
  status: number;
  code: string;
}
const concat = (...parts: Uint8Array[]) => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  parts.reduce((at, p) => (out.set(p, at), at + p.length), 0);
  return out;
};
// Not UTF-8: a lone continuation byte, an overlong NUL, an encoded surrogate, a truncated sequence, 0xFF.
const badUtf8 = fc
  .constantFrom([0x80], [0xc0, 0x80], [0xed, 0xa0, 0x80], [0xe2, 0x82], [0xff], [0xf8, 0x88, 0x80, 0x80, 0x80])
  .map((b) => new Uint8Array(b));

/** Bodies refused before the schema looks: not UTF-8, not JSON, not declared JSON, too large. */
const rawBodies = (valid: fc.Arbitrary<string>, maxBytes: number): fc.Arbitrary<RawBody> =>
  valid.chain((v) =>
    fc.oneof(
      fc.tuple(int(0, v.length), badUtf8).map(([at, bad]) => ({
        body: concat(enc.encode(v.slice(0, at)), bad, enc.encode(v.slice(at))),
        status: 400,
        code: "invalid_encoding",
      })),
      int(0, v.length - 1).map((at) => ({ body: v.slice(0, at), status: 400, code: "invalid_json" })),
      fc
        .constantFrom("}", ",", "x", "\u0000", "'", "]")
        .map((junk) => ({ body: v + junk, status: 400, code: "invalid_json" })),
      fc
        .constantFrom(
          "{'a': 1}",
          "{a: 1}",
          "[1,]",
          "NaN",
          "undefined",
          '{"a":1,}',
          "\u0000",
          "",
          '{"a":"\u0000"',
          "0x10",
        )
        .map((body) => ({ body, status: 400, code: "invalid_json" })),
      fc
        .constantFrom(
          "text/plain",
          "application/x-www-form-urlencoded",
          "multipart/form-data; boundary=x",
          "application/jsonx",
          "application/xml",
          "text/json",
          "application/ld+json",
          "json",
        )
        .map((contentType) => ({ body: v, contentType, status: 415, code: "unsupported_media_type" })),
      fc.constant({ body: v, contentType: "", status: 415, code: "unsupported_media_type" }),
      int(maxBytes + 1, maxBytes + 4_096).map((n) => ({
        body: v + " ".repeat(n - enc.encode(v).length),
        status: 413,
        code: "payload_too_large",
      })),
    ),
  );

// ---- checks -----------------------------------------------------------------------------------

type Answer = Awaited<ReturnType<typeof send>>;

/** A 4xx in the one envelope, `{ error: { code, message, issues? } }`, and nothing else. */
function expectRefusal(r: Answer, status?: number, code?: string): void {
  expect(r.status, r.text).toBeGreaterThanOrEqual(400);
  expect(r.status, r.text).toBeLessThan(500);
  if (status !== undefined) expect(r.status, r.text).toBe(status);
  expect(r.headers.get("content-type")).toMatch(/^application\/json/);
  expect(Object.keys(r.json ?? {})).toEqual(["error"]);
  expect(
    Object.keys(r.json.error).every((k) => ["code", "message", "issues"].includes(k)),
    r.text,
  ).toBe(true);
  ApiError.parse(r.json);
  if (code !== undefined) expect(r.json.error.code, r.text).toBe(code);
}

/** A 400 whose issues name `path`. */
function expectIssue(r: Answer, path: string): void {
  expectRefusal(r, 400, "validation_failed");
  expect(
    r.json.error.issues.map((i: { path: string }) => i.path),
    r.text,
  ).toContain(path);
}

/** What a refused input must not change: every stored row, and the live state (`now` aside). */
async function snapshot(site: string) {
  const [rows, s] = await Promise.all([storedRows(site), call("GET", `/v1/sites/${site}/status`)]);
  return { rows, status: { ...s.json, now: 0 } };
}

async function expectUnchanged(site: string, before: Awaited<ReturnType<typeof snapshot>>) {
  const after = await snapshot(site);
  // As JSON, table by table: a readable difference, lone surrogates escaped.
  expect(Object.keys(after.rows)).toEqual(Object.keys(before.rows));
  for (const t of Object.keys(before.rows))
    expect(JSON.stringify(after.rows[t]), `table ${t}`).toBe(JSON.stringify(before.rows[t]));
  expect(JSON.stringify(after.status), "status").toBe(JSON.stringify(before.status));
}

/**
 * A failure whose message holds a lone surrogate stops vitest's whole run (its pool's socket
 * refuses them): rethrow it escaped. fast-check still prints the counterexample and the seed.
 */
function reportable<A extends unknown[]>(predicate: (...a: A) => Promise<void>) {
  return async (...a: A) => {
    try {
      await predicate(...a);
    } catch (err) {
      if (fc.PreconditionFailure.isFailure(err)) throw err;
      const message = err instanceof Error ? err.message : String(err);
      throw new Error(escapeLoneSurrogates(message));
    }
  };
}

/**
 * A site with two probes and a server, heard through both uplinks. Each reason a heartbeat can be
 * refused for is put on the timeline once per agent (by design, rate-limited); after that a refusal
 * writes nothing. Heartbeats are due every 250 ms, so agents may send often (their rate limit
 * counts per heartbeat interval), and uplinks stay up for 10 minutes of the fuzzer's clock.
 */
async function fixture(site: string) {
  await createSite(site, twoUplinks({ heartbeatMs: 250, downAfterMs: 600_000 }));
  const sbc1 = await TestAgent.enroll(site, "sbc1", "probe", { uplink: "isp1" });
  const sbc2 = await TestAgent.enroll(site, "sbc2", "probe", { uplink: "isp2" });
  const srv1 = await TestAgent.enroll(site, "srv1", "server", { tunnelRestarter: true });
  for (const [a, u] of [
    [sbc1, "isp1"],
    [sbc2, "isp2"],
    [srv1, "isp1"],
    [srv1, "isp2"],
  ] as const) {
    await a.beat(u, { ip: u === "isp1" ? "198.51.100.1" : "198.51.100.5" });
    const body = a.heartbeatBody(u);
    const s = await a.signed(body);
    await a.postRaw(body, { ts: s.ts, sig: s.sig });
    await a.postRaw(body, { ts: s.ts, sig: s.sig }); // replayed
    await a.postRaw(body, { sig: "A".repeat(43) }); // bad_signature
    await a.postRaw(body, { ts: Date.now() - 2 * MAX_SKEW_MS }); // stale_timestamp
    await a.postRaw("{"); // invalid_json
    await a.postRaw("{}"); // validation_failed
  }
  return { sbc1, sbc2, srv1 };
}

/**
 * Distinct timestamps within the skew window, never before the object woke: a well-signed message
 * is never refused as a replay.
 */
let tsCounter = 0;
const freshTs = () => Date.now() + (tsCounter++ % 20_000);

/** Moves the clock on by `ms` per call, so that well-signed messages stay within the agents' rate. */
function ticking(ms: number) {
  let elapsed = 0;
  return () => at((elapsed += ms));
}

async function signedHeartbeat(
  endpoint: string,
  site: string,
  agent: TestAgent,
  body: Body,
  extra: Record<string, string> = {},
) {
  const text = new TextDecoder().decode(typeof body === "string" ? enc.encode(body) : body);
  const ts = freshTs();
  const sig = await sign(agent.key, { direction: "up", site, agent: agent.id, ts, body: text });
  return fuzz(endpoint, "POST", `/v1/sites/${site}/heartbeat`, body, {
    "content-type": "application/json",
    [HEADER_AGENT]: agent.id,
    [HEADER_TS]: String(ts),
    [HEADER_SIG]: sig,
    ...extra,
  });
}

// ---- heartbeats -------------------------------------------------------------------------------

const MAX_SAFE = Number.MAX_SAFE_INTEGER;
const validHeartbeat = (uplink: fc.Arbitrary<string>) =>
  fc.record(
    {
      type: fc.constant("heartbeat"),
      seq: int(0, MAX_SAFE),
      uplink,
      version: text(1, 32),
      appliedGeneration: fc.option(int(0, MAX_SAFE)),
      tunnelGeneration: fc.option(int(0, MAX_SAFE)),
      lastError: fc.option(text(0, 500)),
      rttEdgeMs: fc.option(fc.double({ min: 0, max: 120_000, noNaN: true })),
      rttGatewayMs: fc.option(fc.double({ min: 0, max: 120_000, noNaN: true })),
      routedUplink: fc.option(uplinkId),
    },
    { requiredKeys: ["type", "seq", "uplink", "version", "appliedGeneration", "tunnelGeneration", "lastError"] },
  );

/** A heartbeat that is wrong in one field; `others` are config uplinks this agent may not claim. */
const brokenHeartbeat = (uplink: string, others: string[]): fc.Arbitrary<Broken> =>
  validHeartbeat(fc.constant(uplink)).chain((hb) => {
    const full = { rttEdgeMs: 1, rttGatewayMs: 1, routedUplink: null, ...hb };
    const required = ["type", "seq", "uplink", "version", "appliedGeneration", "tunnelGeneration", "lastError"];
    return fc.oneof(
      broken(full, [], notObject),
      broken(full, ["type"], badEnum(["heartbeat"])),
      broken(full, ["seq"], badNumber(0, MAX_SAFE)),
      broken(full, ["uplink"], fc.oneof(badId(UPLINK_ID), fc.constantFrom("isp9", "constructor", ...others))),
      broken(full, ["version"], fc.oneof(notString, fc.constant(""), tooLong(32))),
      broken(full, ["appliedGeneration"], badNumber(0, MAX_SAFE, { nullable: true })),
      broken(full, ["tunnelGeneration"], badNumber(0, MAX_SAFE, { nullable: true })),
      broken(
        full,
        ["lastError"],
        fc.oneof(
          notString.filter((x) => x !== null),
          tooLong(500),
        ),
      ),
      broken(full, ["rttEdgeMs"], badNumber(0, 120_000, { int: false, nullable: true })),
      broken(full, ["rttGatewayMs"], badNumber(0, 120_000, { int: false, nullable: true })),
      broken(
        full,
        ["routedUplink"],
        badId(UPLINK_ID).filter((x) => x !== null),
      ),
      fc.constantFrom(...required).map((k) => removed(full, [k])),
      extraKey(full, []),
    );
  });

/** Header values a client can send: visible ASCII, no surrounding space. */
const headerValue = fc.string({ unit: int(0x21, 0x7e).map((c) => String.fromCharCode(c)), maxLength: 80 });
const junkSig = fc.oneof(
  fc.stringMatching(/^[A-Za-z0-9_-]{0,100}$/), // any length, 4n + 1 too: no base64 at all
  fc.constantFrom("", "=", "A", "AAAAA", "A".repeat(43), "A".repeat(44), `${"A".repeat(42)}=`, "+/+/", "%%%"),
  headerValue,
);
const junkTs = fc.oneof(
  headerValue,
  fc.constantFrom("", "NaN", "Infinity", "1e400", "-0", "0x10", " 1 ", "9007199254740993"),
  int(-1e9, 1e9).map((d) =>
    String(Date.now() + (Math.abs(d) > MAX_SKEW_MS ? d : d + Math.sign(d || 1) * (MAX_SKEW_MS + 1))),
  ),
  fc.double().map(String),
);

// ---- tests ------------------------------------------------------------------------------------

describe("fuzz: site config", () => {
  it(
    "refuses every broken config with a 400 naming the field, and changes nothing",
    async () => {
      await fixture("fz-cfg");
      const before = await snapshot("fz-cfg");
      await fc.assert(
        fc.asyncProperty(
          brokenConfig,
          reportable(async ({ body, path }) => {
            const text = toJson(body);
            const r = await fuzz("PUT /v1/sites/:site", "PUT", "/v1/sites/fz-cfg", text, admin);
            if (enc.encode(text).length > MAX_ADMIN_BODY_BYTES) expectRefusal(r, 413, "payload_too_large");
            else expectIssue(r, path);
            await expectUnchanged("fz-cfg", before);
          }),
        ),
        runs(500),
      );
    },
    TIMEOUT,
  );

  it(
    "refuses bodies that are not UTF-8, not JSON, not declared JSON or too large, and configs that orphan a probe; changes nothing",
    async () => {
      await fixture("fz-cfg-raw");
      const before = await snapshot("fz-cfg-raw");
      const orphaning = uplinks(2, 8).map((us) => ({
        uplinks:
          us.filter((u) => u.id !== "isp1").length >= 2
            ? us.filter((u) => u.id !== "isp1")
            : us.map((u, k) => ({ ...u, id: `z${k}` })),
      }));
      const input = fc.oneof(
        rawBodies(validConfig.map(toJson), MAX_ADMIN_BODY_BYTES),
        orphaning.map((c) => ({ body: toJson(c), status: 409, code: "uplink_in_use" }) as RawBody),
      );
      await fc.assert(
        fc.asyncProperty(
          input,
          reportable(async ({ body, contentType, status, code }) => {
            const r = await fuzz("PUT /v1/sites/:site", "PUT", "/v1/sites/fz-cfg-raw", body, {
              ...admin,
              "content-type": contentType ?? admin["content-type"],
            });
            expectRefusal(r, status, code);
            await expectUnchanged("fz-cfg-raw", before);
          }),
        ),
        runs(300),
      );
    },
    TIMEOUT,
  );

  it(
    "accepts every valid config, reads it back equal, and keeps judging its uplinks",
    async () => {
      await createSite("fz-valid");
      const srv = await TestAgent.enroll("fz-valid", "srv", "server");
      const tick = ticking(60_000);
      let since = 0;
      await fc.assert(
        fc.asyncProperty(
          validConfig,
          fc.nat(),
          reportable(async (config, pick) => {
            tick();
            const put = await fuzz("PUT /v1/sites/:site", "PUT", "/v1/sites/fz-valid", toJson(config), admin);
            expect(put.status, put.text).toBe(200);
            expect(put.json).toEqual(SiteConfig.parse(config));
            const get = await fuzz("GET /v1/sites/:site", "GET", "/v1/sites/fz-valid", undefined, admin);
            expect(get.json).toEqual(put.json);
            // A heartbeat through any of its uplinks, "constructor" included, is evidence for exactly that uplink.
            const uplink = config.uplinks[pick % config.uplinks.length]!.id;
            const hb = await signedHeartbeat(
              "POST /v1/sites/:site/heartbeat",
              "fz-valid",
              srv,
              srv.heartbeatBody(uplink),
            );
            expect(hb.status, hb.text).toBe(200);
            const s = SiteStatus.parse((await call("GET", "/v1/sites/fz-valid/status")).json);
            expect(s.uplinks.map((u) => u.id).sort()).toEqual(config.uplinks.map((u) => u.id).sort());
            expect(s.uplinks.find((u) => u.id === uplink)!.state).toBe("up");
            expect(s.agents[0]!.uplinksSeen).toContain(uplink);
            const recent: { seq: number; kind: string; message: string; data: any }[] = (
              await call("GET", "/v1/sites/fz-valid/events?limit=100")
            ).json;
            expect(recent.at(-1)!.seq, "more events than fetched").toBeLessThanOrEqual(since + 1);
            const fresh = recent.filter((e) => e.seq > since);
            since = recent[0]!.seq;
            for (const e of fresh) {
              expect(e.kind, e.message).not.toMatch(/^misrouted/);
              if (e.kind === "uplink")
                expect(
                  [UplinkState.safeParse(e.data.from).success, UplinkState.safeParse(e.data.to).success],
                  e.message,
                ).toEqual([true, true]);
            }
          }),
        ),
        runs(150),
      );
    },
    TIMEOUT,
  );
});

describe("fuzz: agents", () => {
  const validEnroll = fc.oneof(
    fc.record({ id: agentId, role: fc.constant("probe"), uplink: fc.constantFrom("isp1", "isp2") }),
    fc.record(
      { id: agentId, role: fc.constant("server"), tunnelRestarter: fc.boolean() },
      { requiredKeys: ["id", "role"] },
    ),
  );
  const brokenEnroll: fc.Arbitrary<Broken> = fc.oneof(
    fc
      .record({
        id: agentId,
        role: fc.constant("probe"),
        uplink: fc.constantFrom("isp1", "isp2"),
        tunnelRestarter: fc.constant(false),
      })
      .chain((a) =>
        fc.oneof(
          broken(a, [], notObject),
          broken(a, ["id"], badId(AGENT_ID)),
          broken(a, ["role"], badEnum(["probe", "server"])),
          broken(a, ["uplink"], fc.oneof(badId(UPLINK_ID), fc.constantFrom("isp9", "constructor"))),
          broken(a, ["tunnelRestarter"], fc.oneof(notBoolean, fc.constant(true))),
          fc.constantFrom(removed(a, ["id"]), removed(a, ["role"]), removed(a, ["uplink"])),
          extraKey(a, []),
        ),
      ),
    fc
      .record({ id: agentId, role: fc.constant("server") })
      .chain((a) => broken(a, ["uplink"], fc.oneof(uplinkId, badId(UPLINK_ID)))),
  );

  it(
    "refuses every broken enrolment, naming the field, and an enrolled id; changes nothing",
    async () => {
      await fixture("fz-enrol");
      const before = await snapshot("fz-enrol");
      const input = fc.oneof(
        brokenEnroll.map((b) => ({ ...b, raw: null as RawBody | null })),
        rawBodies(validEnroll.map(toJson), MAX_ADMIN_BODY_BYTES).map((raw) => ({ body: null, path: "", raw })),
        fc.constantFrom("sbc1", "sbc2", "srv1").map((id) => ({
          body: null,
          path: "",
          raw: { body: toJson({ id, role: "server" }), status: 409, code: "agent_exists" } as RawBody,
        })),
      );
      await fc.assert(
        fc.asyncProperty(
          input,
          reportable(async ({ body, path, raw }) => {
            const r = await fuzz(
              "POST /v1/sites/:site/agents",
              "POST",
              "/v1/sites/fz-enrol/agents",
              raw ? raw.body : toJson(body),
              { ...admin, "content-type": raw?.contentType ?? admin["content-type"] },
            );
            if (raw) expectRefusal(r, raw.status, raw.code);
            else expectIssue(r, path);
            await expectUnchanged("fz-enrol", before);
          }),
        ),
        runs(400),
      );
    },
    TIMEOUT,
  );

  it(
    "refuses every broken rotation, naming the field, and one of an unknown agent; changes nothing",
    async () => {
      await fixture("fz-rotate");
      const before = await snapshot("fz-rotate");
      const rotation = fc.record({ graceSeconds: int(0, 7 * 86_400) });
      const input = fc.oneof(
        rotation
          .chain((r) =>
            fc.oneof(broken(r, [], notObject), broken(r, ["graceSeconds"], badNumber(0, 7 * 86_400)), extraKey(r, [])),
          )
          .map((b) => ({ ...b, agent: "srv1", raw: null as RawBody | null })),
        rawBodies(rotation.map(toJson), MAX_ADMIN_BODY_BYTES).map((raw) => ({
          body: null,
          path: "",
          agent: "srv1",
          raw,
        })),
        fc
          .tuple(
            agentId.filter((id) => !["sbc1", "sbc2", "srv1"].includes(id)),
            rotation,
          )
          .map(([agent, r]) => ({
            body: null,
            path: "",
            agent,
            raw: { body: toJson(r), status: 404, code: "agent_not_found" } as RawBody,
          })),
      );
      await fc.assert(
        fc.asyncProperty(
          input,
          reportable(async ({ body, path, agent, raw }) => {
            const r = await fuzz(
              "POST /v1/sites/:site/agents/:agent/rotate",
              "POST",
              `/v1/sites/fz-rotate/agents/${agent}/rotate`,
              raw ? raw.body : toJson(body),
              { ...admin, "content-type": raw?.contentType ?? admin["content-type"] },
            );
            if (raw) expectRefusal(r, raw.status, raw.code);
            else expectIssue(r, path);
            await expectUnchanged("fz-rotate", before);
          }),
        ),
        runs(250),
      );
    },
    TIMEOUT,
  );

  it(
    "enrols every valid agent with a working secret, and revokes it; refuses revoking bad or unknown ids and changes nothing",
    async () => {
      await fixture("fz-agents");
      const used = new Set(["sbc1", "sbc2", "srv1"]);
      await fc.assert(
        fc.asyncProperty(
          validEnroll,
          reportable(async (req) => {
            fc.pre(!used.has(req.id));
            used.add(req.id);
            const r = await fuzz(
              "POST /v1/sites/:site/agents",
              "POST",
              "/v1/sites/fz-agents/agents",
              toJson(req),
              admin,
            );
            expect(r.status, r.text).toBe(201);
            expect(r.json).toEqual({ id: req.id, secret: expect.stringMatching(/^[A-Za-z0-9_-]{43}$/) });
            const agent = await TestAgent.withSecret("fz-agents", req.id, r.json.secret);
            const uplink = req.role === "probe" ? req.uplink : "isp2";
            expect(
              (await signedHeartbeat("POST /v1/sites/:site/heartbeat", "fz-agents", agent, agent.heartbeatBody(uplink)))
                .status,
            ).toBe(200);
            const del = await fuzz(
              "DELETE /v1/sites/:site/agents/:agent",
              "DELETE",
              `/v1/sites/fz-agents/agents/${req.id}`,
              undefined,
              admin,
            );
            expect(del.json).toEqual({ id: req.id, revoked: true });
            expect(
              (await signedHeartbeat("POST /v1/sites/:site/heartbeat", "fz-agents", agent, agent.heartbeatBody(uplink)))
                .json.error.code,
            ).toBe("unknown_agent");
          }),
        ),
        runs(100),
      );
      const before = await snapshot("fz-agents");
      await fc.assert(
        fc.asyncProperty(
          fc.oneof(
            agentId.filter((id) => !["sbc1", "sbc2", "srv1"].includes(id)),
            badId(AGENT_ID).filter((x): x is string => typeof x === "string"),
          ),
          reportable(async (id) => {
            const path = `/v1/sites/fz-agents/agents/${segment(id)}`;
            const r = await fuzz("DELETE /v1/sites/:site/agents/:agent", "DELETE", path, undefined, admin);
            if (AGENT_ID.test(id)) expectRefusal(r, 404, "agent_not_found");
            else if (keepsSegment(path) && id !== "") expect(r.json.error.issues?.[0]?.path, r.text).toBe("agent");
            expectRefusal(r);
            await expectUnchanged("fz-agents", before);
          }),
        ),
        runs(250),
      );
    },
    TIMEOUT,
  );
});

describe("fuzz: override", () => {
  const override = fc.record({
    uplink: fc.constantFrom("isp1", "isp2"),
    forSeconds: int(1, 7 * 86_400),
    reason: text(1, 200).filter((s) => s.trim().length > 0),
  });
  const brokenOverride: fc.Arbitrary<Broken> = override.chain((o) =>
    fc.oneof(
      broken(o, [], notObject),
      broken(o, ["uplink"], fc.oneof(badId(UPLINK_ID), fc.constantFrom("isp9", "constructor"))),
      broken(o, ["forSeconds"], badNumber(1, 7 * 86_400)),
      broken(o, ["reason"], fc.oneof(notString, fc.constantFrom("", " ", "\t\n "), tooLong(200))),
      fc.constantFrom(removed(o, ["uplink"]), removed(o, ["forSeconds"]), removed(o, ["reason"])),
      extraKey(o, []),
    ),
  );

  it(
    "refuses every broken override, naming the field; changes nothing",
    async () => {
      await fixture("fz-ovr");
      const before = await snapshot("fz-ovr");
      const input = fc.oneof(
        brokenOverride.map((b) => ({ ...b, raw: null as RawBody | null })),
        rawBodies(override.map(toJson), MAX_ADMIN_BODY_BYTES).map((raw) => ({ body: null, path: "", raw })),
      );
      await fc.assert(
        fc.asyncProperty(
          input,
          reportable(async ({ body, path, raw }) => {
            const r = await fuzz(
              "POST /v1/sites/:site/override",
              "POST",
              "/v1/sites/fz-ovr/override",
              raw ? raw.body : toJson(body),
              { ...admin, "content-type": raw?.contentType ?? admin["content-type"] },
            );
            if (raw) expectRefusal(r, raw.status, raw.code);
            else expectIssue(r, path);
            await expectUnchanged("fz-ovr", before);
          }),
        ),
        runs(350),
      );
    },
    TIMEOUT,
  );

  it(
    "pins every valid override and ends it",
    async () => {
      await fixture("fz-ovr-ok");
      await fc.assert(
        fc.asyncProperty(
          override,
          reportable(async (o) => {
            const r = await fuzz(
              "POST /v1/sites/:site/override",
              "POST",
              "/v1/sites/fz-ovr-ok/override",
              toJson(o),
              admin,
            );
            expect(r.status, r.text).toBe(200);
            expect(r.json).toMatchObject({
              mode: "override",
              activeUplink: o.uplink,
              override: { uplink: o.uplink, until: Date.now() + o.forSeconds * 1000, reason: o.reason.trim() },
            });
            const end = await fuzz(
              "DELETE /v1/sites/:site/override",
              "DELETE",
              "/v1/sites/fz-ovr-ok/override",
              undefined,
              admin,
            );
            expect(end.status, end.text).toBe(200);
            expect(end.json).toMatchObject({ mode: "auto", override: null });
          }),
        ),
        runs(120),
      );
    },
    TIMEOUT,
  );
});

describe("fuzz: reading", () => {
  it(
    "answers events for every valid limit and refuses every other query naming the key; no read changes anything",
    async () => {
      await fixture("fz-read");
      const before = await snapshot("fz-read");
      const total = before.rows.events!.length;
      const limit = fc.oneof(
        int(-5, 1_005).map(String),
        fc.constantFrom(
          "",
          "1e2",
          "0x10",
          " 5 ",
          "1.5",
          "5.0",
          "Infinity",
          "NaN",
          "1e400",
          "-0",
          "00010",
          "+5",
          "٣",
          "5abc",
          "1000",
          "1001",
        ),
        nastyString,
      );
      const query = fc.record({
        limit: fc.option(limit, { nil: undefined }),
        extra: fc.option(
          fc.tuple(
            nastyKey.filter((k) => k !== "" && k !== "limit" && wellFormed(k)),
            fc.string(),
          ),
          { nil: undefined },
        ),
      });
      const viewers = fc.constantFrom(`Bearer ${ADMIN}`, `Bearer ${VIEWER}`);
      await fc.assert(
        fc.asyncProperty(
          query,
          viewers,
          reportable(async (q, authorization) => {
            const params = new URLSearchParams();
            if (q.limit !== undefined) params.append("limit", q.limit);
            if (q.extra) params.append(...q.extra);
            const r = await fuzz("GET /v1/sites/:site/events", "GET", `/v1/sites/fz-read/events?${params}`, undefined, {
              authorization,
            });
            const n = q.limit === undefined ? 50 : Number(q.limit);
            const validLimit = Number.isInteger(n) && n >= 1 && n <= 1_000;
            if (validLimit && !q.extra) {
              expect(r.status, r.text).toBe(200);
              expect(r.json.map((e: { seq: number }) => e.seq)).toEqual(
                before.rows
                  .events!.map((e: any) => e.seq)
                  .sort((a: number, b: number) => b - a)
                  .slice(0, Math.min(n, total)),
              );
            } else {
              expectRefusal(r, 400, "validation_failed");
              const paths = r.json.error.issues.map((i: { path: string }) => i.path);
              if (!validLimit) expect(paths, r.text).toContain("limit");
              if (q.extra) expect(paths, r.text).toContain(q.extra[0]);
            }
            await expectUnchanged("fz-read", before);
          }),
        ),
        runs(300),
      );
      const reads = fc.record({
        path: fc.constantFrom(
          "/v1/sites/fz-read",
          "/v1/sites/fz-read/status",
          "/v1/sites/fz-read/metrics",
          "/v1/sites",
        ),
        query: fc.option(
          fc.dictionary(nastyKey, nastyString, { maxKeys: 3 }).map((d) => `?${new URLSearchParams(Object.entries(d))}`),
          { nil: "" },
        ),
        authorization: viewers,
      });
      await fc.assert(
        fc.asyncProperty(
          reads,
          reportable(async ({ path, query, authorization }) => {
            const config = path === "/v1/sites/fz-read";
            const r = await fuzz(
              path === "/v1/sites" ? "GET /v1/sites" : `GET ${path.replace("fz-read", ":site")}`,
              "GET",
              path + query,
              undefined,
              { authorization: config ? `Bearer ${ADMIN}` : authorization },
            );
            expect(r.status, r.text).toBe(200);
            if (path.endsWith("/metrics")) expect(r.headers.get("content-type")).toMatch(/^text\/plain/);
            else if (path.endsWith("/status")) SiteStatus.parse(r.json);
            else if (path === "/v1/sites")
              expect(r.json.sites.map((s: { site: string }) => s.site)).toContain("fz-read");
            await expectUnchanged("fz-read", before);
          }),
        ),
        runs(250),
      );
    },
    TIMEOUT,
  );
});

describe("fuzz: heartbeat", () => {
  it(
    "refuses unsigned and badly signed heartbeats with a 401 and changes nothing",
    async () => {
      const { sbc1, srv1 } = await fixture("fz-hb-sig");
      const before = await snapshot("fz-hb-sig");
      // Signatures that are real but for something else: the other direction, site, agent, time or body.
      const forgery = fc.constantFrom("down", "site", "agent", "ts", "body");
      const input = fc.record({
        agent: fc.oneof(
          fc.constantFrom("sbc1", "srv1", "nobody", undefined),
          headerValue,
          badId(AGENT_ID).filter((x): x is string => typeof x === "string" && /^[\x21-\x7e]*$/.test(x)),
        ),
        ts: fc.oneof(fc.constant("fresh"), fc.constant(undefined), junkTs),
        sig: fc.oneof(
          fc.constant(undefined),
          junkSig,
          forgery.map((f) => ({ forgery: f })),
        ),
        body: fc.oneof(validHeartbeat(fc.constantFrom("isp1", "isp2")).map(toJson), nastyString),
      });
      await fc.assert(
        fc.asyncProperty(
          input,
          reportable(async ({ agent, ts, sig, body }) => {
            const a = agent === "sbc1" ? sbc1 : agent === "srv1" ? srv1 : undefined;
            const t = ts === "fresh" ? freshTs() : ts;
            let s = sig;
            if (typeof sig === "object") {
              const f = sig.forgery;
              const parts = { direction: "up" as const, site: "fz-hb-sig", agent: agent ?? "", ts: Number(t), body };
              s = await sign((a ?? sbc1).key, {
                ...parts,
                ...(f === "down"
                  ? { direction: "down" as const }
                  : f === "site"
                    ? { site: "fz-other" }
                    : f === "agent"
                      ? { agent: `${agent}x` }
                      : f === "ts"
                        ? { ts: Number(t) + 1 }
                        : { body: `${body} ` }),
              });
            }
            const r = await fuzz("POST /v1/sites/:site/heartbeat", "POST", "/v1/sites/fz-hb-sig/heartbeat", body, {
              "content-type": "application/json",
              [HEADER_AGENT]: agent,
              [HEADER_TS]: t === undefined ? undefined : String(t),
              [HEADER_SIG]: s as string | undefined,
            });
            if (enc.encode(body).length > MAX_HEARTBEAT_BYTES && r.status === 413)
              expectRefusal(r, 413, "payload_too_large");
            else expectRefusal(r, 401);
            expect(Number(r.headers.get("x-wanwatch-now"))).toBe(Date.now());
            if (agent !== undefined && !AGENT_ID.test(agent))
              expect(
                r.json.error.issues?.map((i: { path: string }) => i.path),
                r.text,
              ).toEqual([HEADER_AGENT]);
            await expectUnchanged("fz-hb-sig", before);
          }),
        ),
        runs(500),
      );
    },
    TIMEOUT,
  );

  it(
    "refuses every well-signed but broken heartbeat, naming the field, and changes nothing",
    async () => {
      const { sbc1, srv1 } = await fixture("fz-hb-body");
      const before = await snapshot("fz-hb-body");
      const input = fc.oneof(
        fc.tuple(fc.constant(sbc1), brokenHeartbeat("isp1", ["isp2"])),
        fc.tuple(fc.constant(srv1), brokenHeartbeat("isp2", [])),
        // The heartbeat is signed text: its content type is not looked at.
        fc.tuple(
          fc.constantFrom(sbc1, srv1),
          rawBodies(validHeartbeat(fc.constant("isp1")).map(toJson), MAX_HEARTBEAT_BYTES).filter(
            (b) => b.status !== 415,
          ),
        ),
      );
      const tick = ticking(100);
      await fc.assert(
        fc.asyncProperty(
          input,
          reportable(async ([agent, b]) => {
            tick();
            if ("path" in b) {
              const text = toJson(b.body);
              const r = await signedHeartbeat("POST /v1/sites/:site/heartbeat", "fz-hb-body", agent, text);
              if (enc.encode(text).length > MAX_HEARTBEAT_BYTES) expectRefusal(r, 413, "payload_too_large");
              else expectIssue(r, b.path);
            } else {
              expectRefusal(
                await signedHeartbeat("POST /v1/sites/:site/heartbeat", "fz-hb-body", agent, b.body),
                b.status,
                b.code,
              );
            }
            await expectUnchanged("fz-hb-body", before);
          }),
        ),
        runs(500),
      );
    },
    TIMEOUT,
  );

  it(
    "accepts every valid heartbeat with a signed directive, and shows what it said",
    async () => {
      const { sbc1, sbc2, srv1 } = await fixture("fz-hb-ok");
      const input = fc.oneof(
        fc.tuple(fc.constant(sbc1), validHeartbeat(fc.constant("isp1"))),
        fc.tuple(fc.constant(sbc2), validHeartbeat(fc.constant("isp2"))),
        fc.tuple(fc.constant(srv1), validHeartbeat(fc.constantFrom("isp1", "isp2"))),
      );
      const tick = ticking(100);
      await fc.assert(
        fc.asyncProperty(
          input,
          fc.option(fc.ipV4()),
          reportable(async ([agent, hb], ip) => {
            tick();
            const r = await signedHeartbeat(
              "POST /v1/sites/:site/heartbeat",
              "fz-hb-ok",
              agent,
              toJson(hb),
              ip ? { "cf-connecting-ip": ip } : {},
            );
            expect(r.status, r.text).toBe(200);
            const ts = Number(r.headers.get(HEADER_TS));
            expect(
              await verify(
                agent.key,
                { direction: "down", site: "fz-hb-ok", agent: agent.id, ts, body: r.text },
                r.headers.get(HEADER_SIG)!,
              ),
            ).toBe(true);
            expect(EdgeMessage.parse(r.json)).toMatchObject({ type: "directive", ackSeq: hb.seq });
            const s = SiteStatus.parse((await call("GET", "/v1/sites/fz-hb-ok/status")).json);
            expect(s.agents.find((a) => a.id === agent.id)).toMatchObject({
              version: hb.version,
              lastError: hb.lastError,
              appliedGeneration: hb.appliedGeneration,
              tunnelGeneration: hb.tunnelGeneration,
              routedUplink: hb.routedUplink ?? null,
            });
          }),
        ),
        runs(300),
      );
    },
    TIMEOUT,
  );
});

describe("fuzz: WebSocket", () => {
  it(
    "refuses every bad upgrade without a socket, and changes nothing",
    async () => {
      const { sbc1 } = await fixture("fz-ws-up");
      const before = await snapshot("fz-ws-up");
      const input = fc.record({
        agent: fc.constantFrom("sbc1", "srv1", "nobody"),
        upgrade: fc.constantFrom(undefined, "websocket", "WebSocket", "h2c", "websocket, h2c"),
        uplink: fc.oneof(fc.constantFrom(undefined, "isp1", "isp2", "isp9", "constructor", "ISP1"), headerValue),
        ts: fc.oneof(fc.constant("fresh"), fc.constant(undefined), junkTs),
        sig: fc.oneof(fc.constant(undefined), junkSig, fc.constant("other-uplink")),
      });
      await fc.assert(
        fc.asyncProperty(
          input,
          reportable(async ({ agent, upgrade, uplink, ts, sig }) => {
            const t = ts === "fresh" ? freshTs() : ts;
            const s =
              sig === "other-uplink"
                ? await sign(sbc1.key, {
                    direction: "up",
                    site: "fz-ws-up",
                    agent,
                    ts: Number(t),
                    body: `connect ${uplink}x`,
                  })
                : sig;
            const r = await fuzz(
              "GET /v1/sites/:site/agents/:agent/connect",
              "GET",
              `/v1/sites/fz-ws-up/agents/${agent}/connect`,
              undefined,
              {
                upgrade,
                [HEADER_UPLINK]: uplink,
                [HEADER_TS]: t === undefined ? undefined : String(t),
                [HEADER_SIG]: s,
              },
            );
            expect(r.webSocket).toBeFalsy();
            if (upgrade?.toLowerCase() !== "websocket") expectRefusal(r, 426, "upgrade_required");
            else if (!["isp1", "isp2"].includes(uplink ?? "")) expectRefusal(r, 400, "unknown_uplink");
            else expectRefusal(r, 401);
            await expectUnchanged("fz-ws-up", before);
          }),
        ),
        runs(400),
      );
    },
    TIMEOUT,
  );

  it(
    "answers every bad frame with one error frame naming the problem, keeps the socket, and changes nothing",
    async () => {
      const { srv1 } = await fixture("fz-ws");
      const res = await srv1.connect("isp1");
      expect(res.status).toBe(101);
      const ch = new Channel(res.webSocket!, srv1);
      const before = await snapshot("fz-ws");
      const signedFrame = (body: string, ts = freshTs()) =>
        sign(srv1.key, { direction: "up", site: "fz-ws", agent: "srv1", ts, body }).then((sig) => ({ ts, sig, body }));
      type Frame =
        | { data: string | Uint8Array; code: string; names?: string }
        | { broken: Broken }
        | { body: string; code: string }
        | { sig: string; code: string; stale?: boolean };
      const frame: fc.Arbitrary<Frame> = fc.oneof(
        fc.uint8Array({ maxLength: 64 }).map((data) => ({ data, code: "bad_frame" })),
        int(2 * MAX_HEARTBEAT_BYTES + 1, 40_000).map((n) => ({ data: "x".repeat(n), code: "frame_too_large" })),
        fc
          .oneof(nastyString, fc.constantFrom("{", "{'ts':1}", "[1,]", ""))
          .filter((s) => {
            try {
              JSON.parse(s);
              return false;
            } catch {
              return true;
            }
          })
          .map((data) => ({ data, code: "invalid_json" })),
        fc.record({ ts: int(0, MAX_SAFE), sig: fc.constant("A".repeat(43)), body: fc.constant("{}") }).chain((f) =>
          fc
            .oneof(
              broken(f, [], notObject),
              broken(
                f,
                ["ts"],
                badNumber(0, MAX_SAFE).filter((x) => typeof x !== "number" || !Number.isSafeInteger(x)),
              ),
              broken(f, ["sig"], fc.oneof(notString, fc.constant(""), fc.constant("A".repeat(129)))),
              broken(f, ["body"], fc.oneof(notString, fc.constant("x".repeat(8_193)))),
              fc.constantFrom(removed(f, ["ts"]), removed(f, ["sig"]), removed(f, ["body"])),
              extraKey(f, []),
            )
            .map((b) => ({ data: toJson(b.body), code: "bad_frame", names: b.path })),
        ),
        brokenHeartbeat("isp1", ["isp2"]).map((b) => ({ broken: b })),
        fc
          .oneof(nastyString, fc.constantFrom("{", "[1,]"))
          .filter(
            (s) =>
              s.length <= 8_192 &&
              (() => {
                try {
                  JSON.parse(s);
                  return false;
                } catch {
                  return true;
                }
              })(),
          )
          .map((body) => ({ body, code: "invalid_json" })),
        junkSig.filter((s) => s.length >= 1 && s.length <= 128).map((sig) => ({ sig, code: "bad_signature" })),
        fc.constant({ sig: "", code: "stale_timestamp", stale: true }),
      );
      const tick = ticking(100);
      await fc.assert(
        fc.asyncProperty(
          frame,
          reportable(async (f) => {
            tick();
            let names: string | undefined;
            let code: string;
            let data: string | Uint8Array;
            if ("broken" in f) {
              const text = toJson(f.broken.body);
              const oversize = text.length > 8_192;
              data = JSON.stringify(await signedFrame(text));
              [code, names] = oversize ? ["bad_frame", "body"] : ["validation_failed", f.broken.path];
            } else if ("body" in f) [data, code] = [JSON.stringify(await signedFrame(f.body)), f.code];
            else if ("sig" in f) {
              const good = await signedFrame(
                srv1.heartbeatBody("isp1"),
                f.stale ? Date.now() - 2 * MAX_SKEW_MS : undefined,
              );
              [data, code] = [JSON.stringify(f.stale ? good : { ...good, sig: f.sig }), f.code];
            } else [data, code, names] = [f.data, f.code, f.names];
            tried.set("WebSocket frame", (tried.get("WebSocket frame") ?? 0) + 1);
            const n = ch.messages.length;
            ch.ws.send(data);
            const m = await ch.until(() => ch.messages[n], "an answer");
            expect(m.type).toBe("error");
            if (m.type !== "error") return;
            expect(m.error.code, m.error.message).toBe(code);
            if (names) expect(m.error.message).toContain(`${names}: `);
            expect(ch.closed).toBeNull();
            await expectUnchanged("fz-ws", before);
          }),
        ),
        runs(450),
      );
      // And valid frames are answered with the directive, acknowledging their seq.
      await fc.assert(
        fc.asyncProperty(
          validHeartbeat(fc.constant("isp1")),
          reportable(async (hb) => {
            tick();
            tried.set("WebSocket frame", (tried.get("WebSocket frame") ?? 0) + 1);
            const n = ch.messages.length;
            ch.ws.send(JSON.stringify(await signedFrame(toJson(hb))));
            const m = await ch.until(() => ch.messages[n], "an answer");
            expect(m).toMatchObject({ type: "directive", ackSeq: hb.seq, directive: { activeUplink: "isp1" } });
          }),
        ),
        runs(150),
      );
    },
    TIMEOUT,
  );
});

// ---- auth, path parameters, and anything at all ----------------------------------------------------

const SITE_ROUTES = [
  ["PUT", "/v1/sites/:site", "PUT /v1/sites/:site"],
  ["GET", "/v1/sites/:site", "GET /v1/sites/:site"],
  ["POST", "/v1/sites/:site/agents", "POST /v1/sites/:site/agents"],
  ["DELETE", "/v1/sites/:site/agents/srv1", "DELETE /v1/sites/:site/agents/:agent"],
  ["POST", "/v1/sites/:site/override", "POST /v1/sites/:site/override"],
  ["DELETE", "/v1/sites/:site/override", "DELETE /v1/sites/:site/override"],
  ["POST", "/v1/sites/:site/agents/srv1/rotate", "POST /v1/sites/:site/agents/:agent/rotate"],
  ["POST", "/v1/sites/:site/notify/test", "POST /v1/sites/:site/notify/test"],
  ["GET", "/v1/sites/:site/status", "GET /v1/sites/:site/status"],
  ["GET", "/v1/sites/:site/events", "GET /v1/sites/:site/events"],
  ["GET", "/v1/sites/:site/metrics", "GET /v1/sites/:site/metrics"],
  ["GET", "/v1/sites/:site/live", "GET /v1/sites/:site/live"],
  ["POST", "/v1/sites/:site/heartbeat", "POST /v1/sites/:site/heartbeat"],
  ["GET", "/v1/sites/:site/agents/srv1/connect", "GET /v1/sites/:site/agents/:agent/connect"],
  ["GET", "/sites/:site", "GET /sites/:site"],
] as const;
const ADMIN_ROUTES = SITE_ROUTES.slice(0, 8);
const VIEWER_ROUTES = [...SITE_ROUTES.slice(8, 12), ["GET", "/v1/sites", "GET /v1/sites"]] as const;

/** One path segment: percent-encoded, or (for invalid UTF-8) the raw escapes a client might send. */
function segment(s: string): string {
  try {
    return encodeURIComponent(s);
  } catch {
    return s.replace(/[^A-Za-z0-9]/g, "%ED%A0%80");
  }
}
/** Whether a URL parser leaves the path as sent (".." and "." segments are resolved away). */
const keepsSegment = (path: string) => new URL(`${BASE}${path}`).pathname === path;

describe("fuzz: auth and path parameters", () => {
  it(
    "refuses every admin request without the admin token with 401 or 403, valid bodies included; changes nothing",
    async () => {
      await fixture("fz-auth");
      const before = await snapshot("fz-auth");
      const notAdmin = fc.oneof(
        fc.constant(undefined),
        fc.constantFrom(
          "",
          "Bearer",
          `Basic ${btoa(`admin:${ADMIN}`)}`,
          `Bearer ${VIEWER}`,
          `Bearer ${ADMIN}x`,
          `Bearer ${ADMIN.slice(0, -1)}`,
          `Bearer x${ADMIN}`,
          `Bearer ${ADMIN} ${ADMIN}`,
          `Token ${ADMIN}`,
          `Bearer ${ADMIN.toUpperCase()}`,
          ADMIN,
        ),
        headerValue.map((s) => `Bearer ${s}`),
        headerValue,
      );
      const cookie = fc.option(
        fc.oneof(
          headerValue,
          fc.stringMatching(/^[A-Za-z0-9_-]{43}$/).map((m) => `wanwatch_session=v1.9999999999.${m}`),
        ),
        { nil: undefined },
      );
      const bodies: Record<string, fc.Arbitrary<string | undefined>> = {
        "/v1/sites/:site": validConfig.map(toJson),
        "/v1/sites/:site/agents": fc.constant(toJson({ id: "new", role: "server" })),
        "/v1/sites/:site/override": fc.constant(toJson({ uplink: "isp2", forSeconds: 60, reason: "fuzz" })),
        "/v1/sites/:site/agents/srv1/rotate": fc.constant(toJson({ graceSeconds: 60 })),
        "/v1/sites/:site/notify/test": fc.constant(undefined),
      };
      const route = fc.constantFrom(...ADMIN_ROUTES, ...VIEWER_ROUTES).chain(([method, path, endpoint]) =>
        fc.record({
          method: fc.constant(method),
          path: fc.constant(path),
          endpoint: fc.constant(endpoint),
          body: method === "GET" || method === "DELETE" ? fc.constant(undefined) : bodies[path]!,
        }),
      );
      await fc.assert(
        fc.asyncProperty(
          route,
          notAdmin,
          cookie,
          reportable(async ({ method, path, endpoint, body }, authorization, cookie) => {
            const viewerRoute = VIEWER_ROUTES.some(([, p]) => p === path);
            fc.pre(
              !(
                viewerRoute &&
                authorization &&
                /^Bearer\s+\S+\s*$/i.test(authorization) &&
                authorization.split(/\s+/)[1] === VIEWER
              ),
            );
            const r = await fuzz(endpoint, method, path.replace(":site", "fz-auth"), body, {
              authorization,
              cookie,
              "content-type": "application/json",
            });
            const token = /^Bearer\s+(\S+)\s*$/i.exec(authorization ?? "");
            if (!token) expectRefusal(r, 401, "unauthorized");
            else expectRefusal(r, 403, "forbidden");
            await expectUnchanged("fz-auth", before);
          }),
        ),
        runs(400),
      );
    },
    TIMEOUT,
  );

  it(
    "refuses every invalid site or agent id in the path with a 400 naming it",
    async () => {
      await fixture("fz-ids");
      const before = await snapshot("fz-ids");
      const badSite = fc.oneof(
        fc.stringMatching(/^[A-Z][A-Za-z0-9-]{0,10}$/),
        fc.stringMatching(/^[a-z0-9][a-z0-9-]{63,80}$/),
        fc.string({ unit: "binary", minLength: 1, maxLength: 20 }).filter((s) => !AGENT_ID.test(s)),
        fc.constantFrom(
          "..",
          ".",
          "a/b",
          "a\\b",
          "a b",
          "-a",
          "_",
          "\u0000",
          "a\u0000",
          "%",
          "%2e%2e",
          "🛰️",
          "İ",
          "a\n",
          "\ud800",
          "constructor\u0000",
        ),
      );
      const raw = fc
        .constantFrom("%2F", "a%2Fb", "%2e%2e", "%2E", "%E0%A4%A", "%ZZ", "%00", "%C0%80", "%FF", "A%62c")
        .map((s) => ({ raw: s }));
      const agentRoutes = [
        ["DELETE", "/v1/sites/fz-ids/agents/:agent", "DELETE /v1/sites/:site/agents/:agent"],
        ["POST", "/v1/sites/fz-ids/agents/:agent/rotate", "POST /v1/sites/:site/agents/:agent/rotate"],
        ["GET", "/v1/sites/fz-ids/agents/:agent/connect", "GET /v1/sites/:site/agents/:agent/connect"],
      ] as const;
      const input = fc.record({ route: fc.constantFrom(...SITE_ROUTES, ...agentRoutes), id: fc.oneof(badSite, raw) });
      await fc.assert(
        fc.asyncProperty(
          input,
          reportable(async ({ route: [method, template, endpoint], id }) => {
            const param = template.includes(":site") ? "site" : "agent";
            const seg = typeof id === "string" ? segment(id) : id.raw;
            const path = template.replace(`:${param}`, seg);
            const body =
              method === "PUT"
                ? toJson({
                    uplinks: [
                      { id: "a", priority: 1 },
                      { id: "b", priority: 2 },
                    ],
                  })
                : method === "POST"
                  ? "{}"
                  : undefined;
            // workerd sends any request with an Upgrade header as a GET: only the sockets' routes get one.
            const r = await fuzz(endpoint, method, path, body, {
              ...admin,
              upgrade: method === "GET" ? "websocket" : undefined,
            });
            // ".." and "." are resolved away by any URL parser, and the rest may name another route.
            if (!keepsSegment(path)) expect(r.status, r.text).toBeLessThan(500);
            else {
              expectRefusal(r, 400, "validation_failed");
              expect(
                r.json.error.issues.map((i: { path: string }) => i.path),
                r.text,
              ).toEqual([param]);
            }
            await expectUnchanged("fz-ids", before);
          }),
        ),
        runs(400),
      );
    },
    TIMEOUT,
  );

  it(
    "answers any request at all without a 5xx; every JSON refusal is the envelope",
    async () => {
      await fixture("fz-any");
      const seg = fc.oneof(
        {
          arbitrary: fc.constantFrom(
            "v1",
            "sites",
            "fz-any",
            "agents",
            "srv1",
            "sbc1",
            "override",
            "status",
            "events",
            "metrics",
            "notify",
            "test",
            "live",
            "heartbeat",
            "connect",
            "login",
            "logout",
            "healthz",
            "",
          ),
          weight: 6,
        },
        { arbitrary: fc.string({ unit: "binary", maxLength: 12 }).map(segment), weight: 1 },
      );
      const template = fc
        .constantFrom(...SITE_ROUTES.map(([, p]) => p), "/", "/login", "/logout", "/healthz", "/v1/sites")
        .map((p) => p.replace(":site", "fz-any"));
      const path = fc.oneof(
        template,
        fc.array(seg, { maxLength: 6 }).map((s) => `/${s.join("/")}`),
      );
      const query = fc.option(
        fc
          .dictionary(fc.oneof(nastyKey, fc.constantFrom("limit", "next")), nastyString, { maxKeys: 3 })
          .map((d) => `?${new URLSearchParams(Object.entries(d))}`),
        { nil: "" },
      );
      const headers = fc.record(
        {
          authorization: fc.oneof(fc.constantFrom(`Bearer ${ADMIN}`, `Bearer ${VIEWER}`), headerValue),
          "content-type": fc.oneof(
            fc.constantFrom(
              "application/json",
              "text/plain",
              "application/x-www-form-urlencoded",
              "application/json; charset=utf-16",
            ),
            headerValue,
          ),
          "content-length": fc.oneof(fc.nat().map(String), headerValue),
          upgrade: fc.constantFrom("websocket", "h2c"),
          origin: fc.constantFrom(BASE, "https://evil.test", "null"),
          cookie: headerValue,
          [HEADER_AGENT]: fc.oneof(fc.constantFrom("srv1", "sbc1"), headerValue),
          [HEADER_TS]: junkTs,
          [HEADER_SIG]: junkSig,
          [HEADER_UPLINK]: fc.oneof(fc.constantFrom("isp1", "isp2"), headerValue),
          "cf-connecting-ip": fc.oneof(fc.ipV4(), fc.ipV6(), headerValue),
        },
        { requiredKeys: [] },
      );
      const body = fc.oneof(
        fc.constant(undefined),
        rawBodies(
          fc.oneof(
            validConfig.map(toJson),
            fc.jsonValue().map((v) => JSON.stringify(v)),
          ),
          MAX_ADMIN_BODY_BYTES,
        ).map((b) => b.body),
        brokenConfig.map((b) => toJson(b.body)),
        fc.string({ unit: "binary" }).map((s) => `token=${encodeURIComponent(s)}&next=${encodeURIComponent(s)}`),
      );
      const method = fc.constantFrom("GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD");
      await fc.assert(
        fc.asyncProperty(
          method,
          path,
          query,
          headers,
          body,
          reportable(async (m, p, q, h, b) => {
            const r = await fuzz("any request", m, p + q, m === "GET" || m === "HEAD" ? undefined : b, h);
            expect(r.status, r.text).toBeLessThan(500);
            if (r.status < 400 || m === "HEAD") return;
            // The login form answers a wrong token with itself, for people; everything else is the envelope.
            if (r.headers.get("content-type")?.startsWith("text/html"))
              expect([m, new URL(`${BASE}${p}`).pathname]).toEqual(["POST", "/login"]);
            else expectRefusal(r);
          }),
        ),
        runs(1_500),
      );
    },
    TIMEOUT,
  );
});

describe("found by fuzzing", () => {
  it("a signature of 4n + 1 characters is a bad signature, not a 500, over HTTP, at connect and in a frame", async () => {
    const { srv1 } = await fixture("fz-sig5");
    const r = await srv1.postRaw(srv1.heartbeatBody("isp1"), { sig: "AAAAA" });
    expectRefusal(r, 401, "bad_signature");
    const up = await srv1.connect("isp1", { sig: "_" });
    expect([up.status, ((await up.json()) as any).error.code]).toEqual([401, "bad_signature"]);
    const ch = new Channel((await srv1.connect("isp1")).webSocket!, srv1);
    const body = srv1.heartbeatBody("isp1");
    await ch.sendRaw(JSON.stringify({ ...(await srv1.signed(body)), sig: "AAAAA", body }));
    expect(await ch.until(() => ch.messages[0], "an answer")).toMatchObject({
      type: "error",
      error: { code: "bad_signature" },
    });
  });

  it('refuses a heartbeat for uplink "constructor" when the site has none, naming the field', async () => {
    const { srv1 } = await fixture("fz-ctor");
    const before = await snapshot("fz-ctor");
    expectIssue(await srv1.postRaw(srv1.heartbeatBody("constructor")), "uplink");
    await expectUnchanged("fz-ctor", before);
  });

  it('judges an uplink named "constructor" like any other: no false misrouting, and it can be removed', async () => {
    await createSite("fz-ctor-ok", {
      uplinks: [
        { id: "isp1", priority: 1 },
        { id: "isp2", priority: 2 },
      ],
    });
    const srv = await TestAgent.enroll("fz-ctor-ok", "srv", "server");
    await createSite("fz-ctor-ok", {
      uplinks: [
        { id: "constructor", priority: 1 },
        { id: "isp2", priority: 2 },
      ],
    });
    expect(SiteStatus.parse(await status("fz-ctor-ok")).uplinks[0]).toMatchObject({
      id: "constructor",
      state: "unknown",
      lastHeartbeatAt: null,
    });
    await srv.beat("constructor");
    await srv.beat("isp2");
    expect((await status("fz-ctor-ok")).activeUplink).toBe("constructor");
    await createSite("fz-ctor-ok", {
      uplinks: [
        { id: "isp2", priority: 1 },
        { id: "isp3", priority: 2 },
      ],
    });
    expect((await status("fz-ctor-ok")).activeUplink).toBe("isp2");
    expect((await call("GET", "/v1/sites/fz-ctor-ok/events")).json.map((e: { kind: string }) => e.kind)).not.toContain(
      "misrouted-cleared",
    );
  });

  it("names the agent header of a heartbeat, and the field of a well-signed frame, in the refusal", async () => {
    const r = await call("POST", "/v1/sites/fz-names/heartbeat", "{}", null, {
      [HEADER_AGENT]: "Not An Id",
      [HEADER_TS]: "1",
      [HEADER_SIG]: "x",
    });
    expect(r.json.error.issues).toEqual([{ path: HEADER_AGENT, message: expect.any(String) }]);
    const { srv1 } = await fixture("fz-names");
    const ch = new Channel((await srv1.connect("isp1")).webSocket!, srv1);
    await ch.send("isp1", { version: "" });
    expect(await ch.until(() => ch.messages[0], "an answer")).toMatchObject({
      type: "error",
      error: { code: "validation_failed", message: expect.stringContaining("version: ") },
    });
  });
});
