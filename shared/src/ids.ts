import { z } from "zod";

// Ids appear in URLs, SQL and log lines: keep them to a safe, lower-case alphabet.
export const SiteId = z.string().regex(/^[a-z0-9][a-z0-9-]{0,62}$/, "must match [a-z0-9][a-z0-9-]{0,62}");
export const AgentId = SiteId;
export const UplinkId = z.string().regex(/^[a-z0-9][a-z0-9-]{0,31}$/, "must match [a-z0-9][a-z0-9-]{0,31}");

export type SiteId = z.infer<typeof SiteId>;
export type AgentId = z.infer<typeof AgentId>;
export type UplinkId = z.infer<typeof UplinkId>;
