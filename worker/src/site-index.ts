// The list of sites for `GET /`: one small Durable Object, written once per site (on its first
// config), read when someone opens the list.
import { DurableObject } from "cloudflare:workers";
import type { Env } from "./env.ts";

/** Sites the list shows; more are counted, not shown (each shown site costs one request). */
export const LIST_LIMIT = 100;

export class SiteIndex extends DurableObject<Env> {
  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    ctx.storage.sql.exec(`CREATE TABLE IF NOT EXISTS sites (id TEXT PRIMARY KEY, created_at INTEGER NOT NULL)`);
  }

  async add(site: string): Promise<void> {
    this.ctx.storage.sql.exec(`INSERT OR IGNORE INTO sites (id, created_at) VALUES (?, ?)`, site, Date.now());
  }

  async list(): Promise<{ sites: string[]; total: number }> {
    const sql = this.ctx.storage.sql;
    const sites = sql
      .exec<{ id: string }>(`SELECT id FROM sites ORDER BY id LIMIT ?`, LIST_LIMIT)
      .toArray()
      .map((r) => r.id);
    const total =
      sites.length < LIST_LIMIT ? sites.length : sql.exec<{ n: number }>(`SELECT COUNT(*) AS n FROM sites`).one().n;
    return { sites, total };
  }
}

export const siteIndex = (env: Env) => env.SITE_INDEX.get(env.SITE_INDEX.idFromName("sites"));
