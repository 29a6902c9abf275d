// The Worker: auth, validation and response shaping. The site's Durable Object does the rest,
// reached by typed RPC (and by fetch only for WebSocket upgrades).
import { Hono, type MiddlewareHandler } from "hono";
import { HTTPException } from "hono/http-exception";
import {
  AgentId,
  EnrolmentTokenRequest,
  EnrollRequest,
  EventsQuery,
  HEADER_AGENT,
  HEADER_NOW,
  HEADER_SIG,
  HEADER_TS,
  MAX_HEARTBEAT_BYTES,
  OverrideRequest,
  RedeemRequest,
  RotateRequest,
  SiteConfig,
  tokenSite,
} from "#shared";
import type { Env } from "../env.ts";
import { clientAddress } from "../attribution.ts";
import { fail, failureResponse, type Failure } from "../failure.ts";
import { authorizeAdmin, authorizeViewer } from "./auth.ts";
import { siteIndex } from "../site-index.ts";
import { FORWARDED } from "../site/channel.ts";
import { parseWith, readJson, readText } from "./body.ts";
import { install } from "./install.ts";
import { pages } from "./pages.ts";
import { Refused, body, crossOrigin, isWebSocketUpgrade, naming, param, site, siteStub, type C } from "./request.ts";
import { siteResponse } from "./missing-site.ts";
import { resultResponse } from "./respond.ts";

const app = new Hono<{ Bindings: Env }>();

const admin: MiddlewareHandler<{ Bindings: Env }> = async (c, next) => {
  const r = await authorizeAdmin(c.req.raw, c.env);
  if (!r.ok) return failureResponse(r.failure);
  await next();
};

const viewer: MiddlewareHandler<{ Bindings: Env }> = async (c, next) => {
  const r = await authorizeViewer(c.req.raw, c.env);
  if (!r.ok) return failureResponse(r.failure);
  await next();
};

/** What the edge saw of the client: set here, never taken from the client. */
function seenBy(c: C) {
  const cf = (c.req.raw as { cf?: { asn?: unknown } }).cf;
  return { ip: clientAddress(c.req.header("cf-connecting-ip")), asn: typeof cf?.asn === "number" ? cf.asn : null };
}

app.get("/healthz", (c) => c.json({ ok: true }));

// ---- admin ------------------------------------------------------------------------------------
app.put("/v1/sites/:site", admin, async (c) => {
  const s = site(c);
  const r = await s.stub.putConfig(s.id, await body(c, SiteConfig, "site config"));
  if (r.ok) await siteIndex(c.env).add(s.id);
  return resultResponse(r);
});
app.get("/v1/sites/:site", admin, async (c) => {
  const s = site(c);
  return siteResponse(c, s.id, await s.stub.getConfig(s.id));
});
app.post("/v1/sites/:site/agents", admin, async (c) => {
  const s = site(c);
  return siteResponse(c, s.id, await s.stub.enroll(s.id, await body(c, EnrollRequest, "agent")), 201);
});
// A single-use token that enrols the agent when its host redeems it (the one-line install).
app.post("/v1/sites/:site/enrolment-tokens", admin, async (c) => {
  const s = site(c);
  const req = await body(c, EnrolmentTokenRequest, "enrolment token");
  return siteResponse(c, s.id, await s.stub.createEnrolmentToken(s.id, req), 201);
});
app.post("/v1/sites/:site/agents/:agent/rotate", admin, async (c) => {
  const s = site(c);
  return siteResponse(c, s.id, await s.stub.rotate(s.id, param(c, "agent"), await body(c, RotateRequest, "rotation")));
});
app.delete("/v1/sites/:site/agents/:agent", admin, async (c) => {
  const s = site(c);
  return siteResponse(c, s.id, await s.stub.revoke(s.id, param(c, "agent")));
});
app.post("/v1/sites/:site/override", admin, async (c) => {
  const s = site(c);
  return siteResponse(c, s.id, await s.stub.setOverride(s.id, await body(c, OverrideRequest, "override")));
});
app.delete("/v1/sites/:site/override", admin, async (c) => {
  const s = site(c);
  return siteResponse(c, s.id, await s.stub.clearOverride(s.id));
});
// A test notification to every target, now; rate-limited inside the site's object.
app.post("/v1/sites/:site/notify/test", admin, async (c) => {
  const s = site(c);
  return siteResponse(c, s.id, await s.stub.notifyTest(s.id));
});

// ---- viewers ----------------------------------------------------------------------------------
app.get("/v1/sites", viewer, async (c) => {
  const { sites, total } = await siteIndex(c.env).list();
  const lines = await Promise.all(sites.map((id) => siteStub(c.env, id).summary(id)));
  return c.json({ sites: lines.flatMap((r) => (r.ok ? [r.value] : [])), total });
});
app.get("/v1/sites/:site/live", viewer, async (c) => {
  const s = site(c);
  // The session cookie rides along on any WebSocket a page opens: only this edge's pages may.
  if (crossOrigin(c))
    return failureResponse({
      status: 403,
      code: "cross_origin",
      message: "live status is served to this edge's own pages only",
    });
  if (!isWebSocketUpgrade(c))
    return failureResponse({ status: 426, code: "upgrade_required", message: "this endpoint speaks WebSocket only" });
  const headers = new Headers({ upgrade: "websocket", [FORWARDED.site]: s.id });
  return s.stub.fetch(new Request(c.req.raw.url, { method: "GET", headers }));
});
app.get("/v1/sites/:site/status", viewer, async (c) => {
  const s = site(c);
  return siteResponse(c, s.id, await s.stub.status(s.id));
});
app.get("/v1/sites/:site/events", viewer, async (c) => {
  const s = site(c);
  const q = parseWith(EventsQuery, c.req.query(), "query");
  if (!q.ok) return failureResponse(q.failure);
  return siteResponse(c, s.id, await s.stub.events(s.id, q.value.limit));
});
app.get("/v1/sites/:site/metrics", viewer, async (c) => {
  const s = site(c);
  const r = await s.stub.metrics(s.id);
  if (!r.ok) return siteResponse(c, s.id, r);
  return c.text(r.value, 200, { "content-type": "text/plain; version=0.0.4; charset=utf-8" });
});

// ---- agents (authenticated by their signatures, inside the site's object) --------------------
app.post("/v1/sites/:site/heartbeat", async (c) => {
  const now = () => ({ [HEADER_NOW]: String(Date.now()) });
  const s = site(c);
  const agent = parseWith(AgentId, c.req.header(HEADER_AGENT) ?? "", HEADER_AGENT);
  const ts = Number(c.req.header(HEADER_TS));
  const sig = c.req.header(HEADER_SIG) ?? "";
  if (!agent.ok)
    return failureResponse(
      {
        ...naming(agent.failure, HEADER_AGENT),
        status: 401,
        code: "unknown_agent",
        message: `header ${HEADER_AGENT} must name an enrolled agent`,
      },
      now(),
    );
  if (!Number.isSafeInteger(ts) || !sig)
    return failureResponse(
      { status: 401, code: "unsigned", message: `headers ${HEADER_TS} (edge time, ms) and ${HEADER_SIG} are required` },
      now(),
    );
  const text = await readText(c.req.raw, MAX_HEARTBEAT_BYTES);
  if (!text.ok) return failureResponse(text.failure, now());
  const r = await s.stub.heartbeat(s.id, { agent: agent.value, ts, sig, body: text.value, seen: seenBy(c) });
  if (!r.ok) return failureResponse(r.failure, now());
  return new Response(r.value.body, {
    headers: {
      "content-type": "application/json",
      [HEADER_TS]: String(r.value.ts),
      [HEADER_SIG]: r.value.sig,
      ...now(),
    },
  });
});

// Public: the token is the credential, and it travels in the body, never in a URL.
app.post("/v1/enroll", async (c) => {
  const req = await readJson(c.req.raw, RedeemRequest, "enrolment", 1024);
  if (!req.ok) return failureResponse(req.failure);
  const { token, check, site: expected } = req.value;
  const tokenOf = tokenSite(token);
  if (!tokenOf)
    return failureResponse({
      status: 400,
      code: "token_malformed",
      message: "token: not an enrolment token (one reads wwe1.SITE.… as `wanwatch site enroll` printed it)",
      issues: [{ path: "token", message: "expected wwe1.SITE.<43 characters>" }],
    });
  if (expected && expected !== tokenOf)
    return failureResponse({
      status: 409,
      code: "token_other_site",
      message: `this enrolment token is for site "${tokenOf}", not "${expected}": nothing enrolled`,
    });
  const r = await siteStub(c.env, tokenOf).redeemEnrolment(tokenOf, { token, check: check ?? false, ip: seenBy(c).ip });
  return resultResponse(r, check ? 200 : 201);
});

app.get("/v1/sites/:site/agents/:agent/connect", async (c) => {
  const s = site(c);
  const agent = param(c, "agent");
  if (!isWebSocketUpgrade(c))
    return failureResponse({ status: 426, code: "upgrade_required", message: "this endpoint speaks WebSocket only" });
  const headers = new Headers(c.req.raw.headers);
  const seen = seenBy(c);
  headers.set(FORWARDED.site, s.id);
  headers.set(FORWARDED.agent, agent);
  headers.set(FORWARDED.clientIp, seen.ip ?? "");
  headers.set(FORWARDED.clientAsn, seen.asn === null ? "" : String(seen.asn));
  return s.stub.fetch(new Request(c.req.raw.url, { method: "GET", headers }));
});

app.route("/", pages);
app.route("/", install);

app.notFound(() => failureResponse({ status: 404, code: "not_found", message: "no such endpoint" }));

app.onError((err) => {
  if (err instanceof Refused) return failureResponse(err.failure);
  // Hono's own errors (e.g. malformed requests) keep their status, in our envelope.
  if (err instanceof HTTPException)
    return failureResponse({
      ...fail(400, "bad_request", err.message).failure,
      status: err.status as Failure["status"],
    });
  console.error(JSON.stringify({ msg: "unhandled error", error: String(err), stack: (err as Error).stack }));
  return Response.json({ error: { code: "internal", message: "internal error" } }, { status: 500 });
});

export default app;
