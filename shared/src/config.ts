import { z } from "zod";
import { UplinkId } from "./ids.ts";

/**
 * A metered uplink's data plan: `capMB` (10⁶ bytes) a period, each period starting on `resetDay`
 * of the month at 00:00 UTC (1–28, so every month has it).
 */
export const DataPlan = z.strictObject({
  capMB: z.int().min(1).max(100_000_000),
  resetDay: z.int().min(1).max(28).default(1),
});
export type DataPlan = z.infer<typeof DataPlan>;

export const Uplink = z.strictObject({
  id: UplinkId,
  priority: z.int().min(1).max(99),
  name: z.string().min(1).max(64).optional(),
  // Paid by the byte (an LTE backup, say): while it stands by, only its probe watches it closely.
  // A plan instead of `true` also counts its bytes against a monthly cap.
  metered: z.union([z.boolean(), DataPlan], { error: "must be true, false or { capMB, resetDay }" }).optional(),
});

/** The uplink's data plan, if it is metered with a cap. */
export const dataPlanOf = (u: Uplink): DataPlan | null => (typeof u.metered === "object" ? u.metered : null);

export const Policy = z
  .strictObject({
    heartbeatMs: z.int().min(250).max(60_000).default(1_000),
    downAfterMs: z.int().min(500).max(600_000).default(3_000),
    failbackAfterMs: z.int().min(0).max(86_400_000).default(60_000),
    minDwellMs: z.int().min(0).max(3_600_000).default(10_000),
    // A primary that loses this share of its probe's handshakes to the edge, or answers this slowly
    // (median), over the probe's last minute, hands over to a healthy backup (1: only total loss).
    degradedLossRatio: z.number().min(0.01).max(1).default(0.2),
    degradedRttMs: z.int().min(10).max(60_000).default(500),
    // Witness reports: this many server agents whose heartbeats through an uplink go unanswered,
    // while another uplink answers them, take it down after one heartbeat of silence instead of
    // downAfterMs. 0: silence alone.
    witnessQuorum: z.int().min(0).max(100).default(2),
    // A metered uplink standing by: its probe heartbeats through it this often, and every server
    // checks its own path through it this often (never faster than heartbeatMs); at full rate again
    // the moment it is active.
    meteredHeartbeatMs: z.int().min(1_000).max(600_000).default(30_000),
    meteredCheckMs: z.int().min(1_000).max(3_600_000).default(600_000),
    // A return from a metered uplink to a better one waits this long instead of failbackAfterMs
    // (when shorter): less time spent on the metered plan.
    meteredFailbackAfterMs: z.int().min(0).max(86_400_000).optional(),
  })
  // One lost heartbeat must never look like an outage.
  .refine((p) => p.downAfterMs >= 2 * p.heartbeatMs, {
    path: ["downAfterMs"],
    message: "must be at least 2 × heartbeatMs",
  });

/** Who restarts the tunnels after a switch: one elected server, every server, or nobody. */
export const TunnelRestartMode = z.enum(["cluster", "per-server", "none"]);
export type TunnelRestartMode = z.infer<typeof TunnelRestartMode>;

export const TunnelPolicy = z.strictObject({
  restart: TunnelRestartMode.default("cluster"),
  // In cluster mode: how long to wait for every live server to apply a switch before restarting anyway.
  maxWaitMs: z.int().min(1_000).max(600_000).default(30_000),
});

export const NotifyTarget = z.strictObject({
  kind: z.enum(["webhook", "slack", "discord", "ntfy"]),
  url: z.url({ protocol: /^https?$/ }).max(2_048),
});

export const SiteConfig = z
  .strictObject({
    uplinks: z.array(Uplink).min(2).max(8),
    policy: Policy.prefault({}),
    tunnels: TunnelPolicy.default({ restart: "cluster", maxWaitMs: 30_000 }),
    notify: z.array(NotifyTarget).max(10).default([]),
  })
  .superRefine((c, ctx) => {
    const seen = new Map<string, number>();
    const priorities = new Map<number, number>();
    c.uplinks.forEach((u, i) => {
      if (seen.has(u.id))
        ctx.addIssue({ code: "custom", path: ["uplinks", i, "id"], message: `duplicate uplink id "${u.id}"` });
      if (priorities.has(u.priority))
        ctx.addIssue({ code: "custom", path: ["uplinks", i, "priority"], message: `duplicate priority ${u.priority}` });
      seen.set(u.id, i);
      priorities.set(u.priority, i);
    });
  });

export type Uplink = z.infer<typeof Uplink>;
export type Policy = z.infer<typeof Policy>;
export type SiteConfig = z.infer<typeof SiteConfig>;
export type SiteConfigInput = z.input<typeof SiteConfig>;
export type NotifyTarget = z.infer<typeof NotifyTarget>;
