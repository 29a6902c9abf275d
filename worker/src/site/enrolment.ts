// Enrolment tokens: created by the admin, redeemed once by the agent's host for a fresh secret.
// Only a hash is stored; each refusal names its cause; failed redemptions are rate-limited, since
// anyone may call the public endpoint.
import {
  newSecret,
  type EnrolmentGrant,
  type EnrolmentTokenRequest,
  type EnrolmentTokenResponse,
  type RedeemResponse,
} from "#shared";
import { fail, ok, type Failure, type Result } from "../failure.ts";
import type { EnrolmentTokenRow, SiteStore } from "../store.ts";
import type { ConfiguredSite } from "./configured.ts";
import type { NewEvent } from "./events.ts";
import { MAX_AGENTS, type AgentRegistry } from "./registry.ts";

/** Failed redemptions a site accepts per window before it answers 429. */
export const REDEEM_FAILURES_PER_WINDOW = 10;
export const REDEEM_WINDOW_MS = 60_000;
/** A redeemed or expired token is remembered this long (a second use is told why), then forgotten. */
const TOKEN_MEMORY_MS = 7 * 86_400_000;
/** A refusal of one known token is put on the timeline once per cause in this time. */
const REFUSAL_LOG_MS = 5 * 60_000;

const NEW_LINE = "ask the site's admin for a new install line (wanwatch site enroll)";

/** Hex SHA-256 of the token: what the table holds and looks up. */
export async function tokenHash(token: string): Promise<string> {
  const d = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(token));
  return [...new Uint8Array(d)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

export const unknownToken = () =>
  fail(
    404,
    "token_unknown",
    `this enrolment token is not known to the edge: check it was copied whole, or ${NEW_LINE}`,
  );

/** Why a stored token cannot be redeemed at `now`, if it cannot. */
export function tokenRefusal(row: EnrolmentTokenRow, now: number): Failure | null {
  if (row.redeemedAt !== null)
    return fail(
      409,
      "token_used",
      `this enrolment token was already used at ${new Date(row.redeemedAt).toISOString()} (agent ${row.agent} is enrolled): a token works once; ${NEW_LINE}, after \`wanwatch site revoke --id ${row.agent}\` if that host is gone`,
    ).failure;
  if (now >= row.expiresAt)
    return fail(
      410,
      "token_expired",
      `this enrolment token expired at ${new Date(row.expiresAt).toISOString()}: ${NEW_LINE}`,
    ).failure;
  return null;
}

export class EnrolmentDesk {
  /** When recent redemptions failed (memory only: an eviction forgets them, which only loosens the limit). */
  private failures: number[] = [];
  private readonly refusalLoggedAt = new Map<string, number>();

  constructor(
    private readonly store: SiteStore,
    private readonly registry: AgentRegistry,
  ) {}

  async create(site: ConfiguredSite, req: EnrolmentTokenRequest, now: number): Promise<Result<EnrolmentTokenResponse>> {
    const { ttlSeconds, ...placement } = req;
    const refused = this.registry.refusal(site, placement);
    if (refused) return refused;
    this.store.pruneEnrolmentTokens(now - TOKEN_MEMORY_MS);
    if (this.store.pendingEnrolmentTokens(now) >= MAX_AGENTS)
      return fail(409, "too_many_tokens", `site "${site.id}" already has ${MAX_AGENTS} unused enrolment tokens`);
    const token = `wwe1.${site.id}.${newSecret()}`;
    const row: EnrolmentTokenRow = {
      hash: await tokenHash(token),
      agent: placement.id,
      role: placement.role,
      uplink: placement.uplink ?? null,
      tunnelRestarter: placement.tunnelRestarter ?? false,
      createdAt: now,
      expiresAt: now + ttlSeconds * 1000,
      redeemedAt: null,
    };
    this.store.transaction(() => {
      const replaced = this.store.saveEnrolmentToken(row);
      const until = new Date(row.expiresAt).toISOString();
      this.store.appendEvents([
        {
          at: now,
          kind: "enrolment-token-created",
          message: `enrolment token for agent ${row.agent} (${row.role}${row.uplink ? ` behind ${row.uplink}` : ""}) issued, valid until ${until}${replaced ? `; it replaces the unused one issued before` : ""}`,
          data: { agent: row.agent, role: row.role, uplink: row.uplink, expiresAt: row.expiresAt, replaced },
        },
      ]);
    });
    return ok({ ...grant(site, row), token });
  }

  /** What the token enrols (`check`), or the agent enrolled and its secret, the token spent in the same transaction. */
  async redeem(
    site: ConfiguredSite | null,
    token: string,
    check: boolean,
    ip: string | null,
    now: number,
  ): Promise<Result<EnrolmentGrant | RedeemResponse>> {
    this.failures = this.failures.filter((t) => now - t < REDEEM_WINDOW_MS);
    if (this.failures.length >= REDEEM_FAILURES_PER_WINDOW) {
      const retryAfter = Math.ceil((this.failures[0]! + REDEEM_WINDOW_MS - now) / 1000);
      return { ok: false, failure: { ...tooMany().failure, retryAfter } };
    }
    const hash = await tokenHash(token);
    const row = site ? this.store.enrolmentToken(hash) : null;
    if (!site || !row) return this.failed(site, null, unknownToken(), ip, now);
    const refused = tokenRefusal(row, now);
    if (refused) return this.failed(site, row, { ok: false, failure: refused }, ip, now);
    if (check) return ok(grant(site, row));
    const placement = {
      id: row.agent,
      role: row.role,
      ...(row.uplink ? { uplink: row.uplink } : {}),
      ...(row.tunnelRestarter ? { tunnelRestarter: true } : {}),
    };
    const r = await this.registry.enroll(site, placement, now, () => {
      // Read again inside the transaction: a concurrent redemption may have spent it meanwhile.
      const current = this.store.enrolmentToken(hash);
      const late = current ? tokenRefusal(current, now) : unknownToken().failure;
      if (late) return { ok: false, failure: late };
      this.store.markEnrolmentTokenRedeemed(hash, now);
      const redeemed: NewEvent = {
        at: now,
        kind: "enrolment-token-redeemed",
        message: `agent ${row.agent}: enrolment token redeemed${ip ? ` from ${ip}` : ""}; the agent has its secret`,
        data: { agent: row.agent, ip },
      };
      return ok([redeemed]);
    });
    if (!r.ok) return this.failed(site, row, r, ip, now);
    return ok({ ...grant(site, row), secret: r.value.secret });
  }

  private failed<T>(
    site: ConfiguredSite | null,
    row: EnrolmentTokenRow | null,
    r: { ok: false; failure: Failure },
    ip: string | null,
    now: number,
  ): Result<T> {
    this.failures.push(now);
    if (!site) return r;
    // An unknown token could be anyone's guess: only a known token's refusal, and the limit tripping, are recorded.
    const tripped = this.failures.length === REDEEM_FAILURES_PER_WINDOW;
    const key = row ? `${row.hash}:${r.failure.code}` : null;
    if (key && now - (this.refusalLoggedAt.get(key) ?? -Infinity) >= REFUSAL_LOG_MS) {
      this.refusalLoggedAt.set(key, now);
      this.record(row!.agent, r.failure, ip, now);
    }
    if (tripped) this.record(null, tooMany().failure, ip, now);
    return r;
  }

  private record(agent: string | null, f: Failure, ip: string | null, now: number): void {
    const who = agent
      ? `agent ${agent}'s enrolment token`
      : `${REDEEM_FAILURES_PER_WINDOW} failed enrolments in a minute`;
    this.store.appendEvents([
      {
        at: now,
        kind: "enrolment-refused",
        message: `enrolment refused (${f.code}): ${who}${ip ? `, from ${ip}` : ""}`,
        data: { agent, code: f.code, ip },
      },
    ]);
  }
}

const tooMany = () =>
  fail(
    429,
    "too_many_attempts",
    `too many failed enrolments for this site in the last minute: wait a minute, then check the token`,
  );

function grant(site: ConfiguredSite, row: EnrolmentTokenRow): EnrolmentGrant {
  return {
    site: site.id,
    agent: row.agent,
    role: row.role,
    uplink: row.uplink,
    tunnelRestarter: row.tunnelRestarter,
    uplinks: [...site.config.uplinks].sort((a, b) => a.priority - b.priority).map((u) => u.id),
    expiresAt: row.expiresAt,
  };
}
