// One-line installs: a short-lived, single-use enrolment token stands in for the agent's secret
// until the agent's own host redeems it, so no secret or admin token passes through a command line.
import { z } from "zod";
import { AgentRole, agentPlacement, checkPlacement } from "./admin.ts";
import { AgentId, SiteId, UplinkId } from "./ids.ts";

/** Default and bounds of a token's life. */
export const ENROLMENT_TTL_SECONDS = { default: 3_600, min: 60, max: 7 * 86_400 } as const;

/** `wwe1.<site>.<43 base64url characters>`: the site routes the redemption; the rest is 256 random bits. */
export const ENROLMENT_TOKEN = /^wwe1\.([a-z0-9][a-z0-9-]{0,62})\.([A-Za-z0-9_-]{43})$/;

/** The site a token names, or null when the text is no enrolment token at all. */
export function tokenSite(token: string): string | null {
  return ENROLMENT_TOKEN.exec(token)?.[1] ?? null;
}

/** Admin: a token that, once redeemed, enrols this agent. */
export const EnrolmentTokenRequest = z
  .strictObject({
    ...agentPlacement,
    ttlSeconds: z
      .int()
      .min(ENROLMENT_TTL_SECONDS.min)
      .max(ENROLMENT_TTL_SECONDS.max)
      .default(ENROLMENT_TTL_SECONDS.default),
  })
  .superRefine(checkPlacement);
export type EnrolmentTokenRequest = z.infer<typeof EnrolmentTokenRequest>;

/** What a token enrols, as its host learns it (before and after redeeming). */
export const EnrolmentGrant = z.object({
  site: SiteId,
  agent: AgentId,
  role: AgentRole,
  uplink: UplinkId.nullable(),
  tunnelRestarter: z.boolean(),
  /** The site's uplinks, best priority first: a server names its interface to each. */
  uplinks: z.array(UplinkId),
  expiresAt: z.int(),
});
export type EnrolmentGrant = z.infer<typeof EnrolmentGrant>;

export const EnrolmentTokenResponse = EnrolmentGrant.extend({ token: z.string().regex(ENROLMENT_TOKEN) });
export type EnrolmentTokenResponse = z.infer<typeof EnrolmentTokenResponse>;

/**
 * Public: the token in the body (never a URL). `check: true` only says what it would enrol, so the
 * host can validate everything before it spends the token; `site`, when given, must be the token's.
 */
export const RedeemRequest = z.strictObject({
  token: z.string().max(200),
  check: z.boolean().optional(),
  site: SiteId.optional(),
});
export type RedeemRequest = z.infer<typeof RedeemRequest>;

export const RedeemResponse = EnrolmentGrant.extend({ secret: z.string() });
export type RedeemResponse = z.infer<typeof RedeemResponse>;
