import { z } from "zod";
import { AgentId, UplinkId } from "./ids.ts";

export const AgentRole = z.enum(["probe", "server"]);
export type AgentRole = z.infer<typeof AgentRole>;

/** Who an agent is and where it sits; the same for a direct enrolment and an enrolment token. */
export const agentPlacement = {
  id: AgentId,
  role: AgentRole,
  uplink: UplinkId.optional(),
  tunnelRestarter: z.boolean().optional(),
};

/** A probe sits behind one uplink; a server uses every uplink and alone may restart tunnels. */
export function checkPlacement(
  a: { role: AgentRole; uplink?: string | undefined; tunnelRestarter?: boolean | undefined },
  ctx: z.RefinementCtx,
): void {
  if (a.role === "probe" && !a.uplink)
    ctx.addIssue({
      code: "custom",
      path: ["uplink"],
      message: "a probe sits behind exactly one uplink: uplink is required",
    });
  if (a.role === "server" && a.uplink)
    ctx.addIssue({ code: "custom", path: ["uplink"], message: "a server agent uses every uplink: omit uplink" });
  if (a.role === "probe" && a.tunnelRestarter)
    ctx.addIssue({ code: "custom", path: ["tunnelRestarter"], message: "only a server agent can restart tunnels" });
}

export const EnrollRequest = z.strictObject(agentPlacement).superRefine(checkPlacement);
export type EnrollRequest = z.infer<typeof EnrollRequest>;

export const EnrollResponse = z.object({ id: AgentId, secret: z.string() });
export type EnrollResponse = z.infer<typeof EnrollResponse>;

/** A new secret for an enrolled agent; the old one keeps working for the grace, or until the new one is used. */
export const RotateRequest = z.strictObject({
  graceSeconds: z
    .int()
    .min(0)
    .max(7 * 86_400)
    .default(86_400),
});
export type RotateRequest = z.infer<typeof RotateRequest>;

export const RotateResponse = z.object({ id: AgentId, secret: z.string(), previousValidUntil: z.int().nullable() });
export type RotateResponse = z.infer<typeof RotateResponse>;

export const OverrideRequest = z.strictObject({
  uplink: UplinkId,
  forSeconds: z
    .int()
    .min(1)
    .max(7 * 86_400),
  reason: z.string().trim().min(1).max(200),
});
export type OverrideRequest = z.infer<typeof OverrideRequest>;

export const EventsQuery = z.strictObject({
  limit: z.coerce.number().int().min(1).max(1_000).default(50),
});
