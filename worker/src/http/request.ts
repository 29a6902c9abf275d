// What a route needs from a request: validated path parameters, the site's object, a validated
// body; a refusal is thrown as data and becomes the JSON error envelope in the app's onError.
import type { Context } from "hono";
import type { z } from "zod";
import { AgentId, SiteId } from "#shared";
import type { Env } from "../env.ts";
import type { Failure } from "../failure.ts";
import { parseWith, readJson } from "./body.ts";

export type C = Context<{ Bindings: Env }>;

export class Refused extends Error {
  readonly failure: Failure;
  constructor(failure: Failure) {
    super(failure.message);
    this.failure = failure;
  }
}

/** Validated path parameter, or a 400 naming it. */
export function param(c: C, name: "site" | "agent"): string {
  const r = parseWith(name === "site" ? SiteId : AgentId, c.req.param(name), name);
  if (!r.ok) throw new Refused(naming(r.failure, name));
  return r.value;
}

/** A refused single value (a path parameter, a header): its issues name it rather than "(root)". */
export function naming(f: Failure, name: string): Failure {
  return { ...f, issues: f.issues?.map((i) => ({ ...i, path: name })) };
}

export const siteStub = (env: Env, id: string) => env.SITES.get(env.SITES.idFromName(id));

/** The site named in the path, and its object. */
export function site(c: C) {
  const id = param(c, "site");
  return { id, stub: siteStub(c.env, id) };
}

export async function body<S extends z.ZodType>(c: C, schema: S, what: string): Promise<z.infer<S>> {
  const r = await readJson(c.req.raw, schema, what);
  if (!r.ok) throw new Refused(r.failure);
  return r.value;
}

/** A browser request sent from another origin (absent Origin: not a browser, or same-origin navigation). */
export function crossOrigin(c: C): boolean {
  const origin = c.req.header("origin");
  return origin !== undefined && origin !== new URL(c.req.url).origin;
}

export function isWebSocketUpgrade(c: C): boolean {
  return (c.req.header("upgrade") ?? "").toLowerCase() === "websocket";
}
