// The status pages for people: the list of sites, a site's live page, and the login that turns
// a token typed into a form into an HttpOnly session cookie (no token ever in a URL).
import { Hono } from "hono";
import type { Env } from "../env.ts";
import { failureResponse } from "../failure.ts";
import loginHtml from "../page/login.html";
import siteHtml from "../page/status.html";
import sitesHtml from "../page/sites.html";
import { page } from "../page/serve.ts";
import { authorizeViewer, tokenRole } from "./auth.ts";
import { readText } from "./body.ts";
import { crossOrigin, param, type C } from "./request.ts";
import { clearedSession, issueSession } from "./session.ts";

export const pages = new Hono<{ Bindings: Env }>();

/** Only a path on this edge: never another host (`//x`, `/\x`), never a scheme. */
function safeNext(next: string | null | undefined): string {
  return next && /^\/(?![/\\])[\w\-./%~]*$/.test(next) ? next : "/";
}

const seeOther = (location: string, cookie?: string) =>
  new Response(null, {
    status: 303,
    headers: { location, "cache-control": "no-store", ...(cookie ? { "set-cookie": cookie } : {}) },
  });

/** The page, or the login form that comes back to it. */
async function viewerPage(c: C, template: string): Promise<Response> {
  const r = await authorizeViewer(c.req.raw, c.env);
  if (r.ok) return page(template);
  if (r.failure.status === 401) return seeOther(`/login?next=${encodeURIComponent(new URL(c.req.url).pathname)}`);
  return failureResponse(r.failure);
}

const secure = (c: C) => new URL(c.req.url).protocol === "https:";
const refuseCrossOrigin = () =>
  failureResponse({ status: 403, code: "cross_origin", message: "forms are accepted from this edge's own pages only" });

pages.get("/", (c) => viewerPage(c, sitesHtml));
pages.get("/sites/:site", (c) => {
  param(c, "site"); // a bad id is a 400 naming it, before any login
  return viewerPage(c, siteHtml);
});

pages.get("/login", (c) => page(loginHtml, { next: safeNext(c.req.query("next")), message: "" }));

pages.post("/login", async (c) => {
  if (crossOrigin(c)) return refuseCrossOrigin();
  const text = await readText(c.req.raw, 4_096);
  if (!text.ok) return failureResponse(text.failure);
  const form = new URLSearchParams(text.value);
  const next = safeNext(form.get("next"));
  if (!c.env.ADMIN_TOKEN && !c.env.VIEWER_TOKEN)
    return page(
      loginHtml,
      {
        next,
        message:
          "This edge has no tokens yet: on Cloudflare run `npx wrangler secret put VIEWER_TOKEN`; on a local edge put VIEWER_TOKEN=… in .dev.vars (see .dev.vars.example) and restart it.",
      },
      503,
    );
  const token = form.get("token") ?? "";
  if (!token || !(await tokenRole(token, c.env)))
    return page(loginHtml, { next, message: "That is not this edge's viewer or admin token." }, 401);
  return seeOther(next, await issueSession(c.env, Date.now(), secure(c)));
});

pages.post("/logout", (c) => (crossOrigin(c) ? refuseCrossOrigin() : seeOther("/login", clearedSession(secure(c)))));
