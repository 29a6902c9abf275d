import { z } from "zod";
import { AgentId, UplinkId } from "./ids.ts";

export const AgentRole = z.enum(["probe", "server"]);
export type AgentRole = z.infer<typeof AgentRole>;

export const EnrollRequest = z
  .strictObject({
    id: AgentId,
    role: AgentRole,
    uplink: UplinkId.optional(),
    tunnelRestarter: z.boolean().optional(),
  })
  .superRefine((a, ctx) => {
    if (a.role === "probe" && !a.uplink)
      ctx.addIssue({ code: "custom", path: ["uplink"], message: "a probe sits behind exactly one uplink: uplink is required" });
    if (a.role === "server" && a.uplink)
      ctx.addIssue({ code: "custom", path: ["uplink"], message: "a server agent uses every uplink: omit uplink" });
    if (a.role === "probe" && a.tunnelRestarter)
      ctx.addIssue({ code: "custom", path: ["tunnelRestarter"], message: "only a server agent can restart tunnels" });
  });
export type EnrollRequest = z.infer<typeof EnrollRequest>;

export const EnrollResponse = z.object({ id: AgentId, secret: z.string() });
export type EnrollResponse = z.infer<typeof EnrollResponse>;

export const OverrideRequest = z.strictObject({
  uplink: UplinkId,
  forSeconds: z.int().min(1).max(7 * 86_400),
  reason: z.string().trim().min(1).max(200),
});
export type OverrideRequest = z.infer<typeof OverrideRequest>;

export const EventsQuery = z.strictObject({
  limit: z.coerce.number().int().min(1).max(1_000).default(50),
});
