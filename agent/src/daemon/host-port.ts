// What the daemon needs from the host module (agent/src/host): routes, policy routing, tunnels.
// Declared here so the daemon can run against the real module or a smaller real one in tests.
import type { AgentConfig, UplinkConfig } from "../config/schema.ts";
import type { Switcher, TunnelRestarter } from "../directive/applier.ts";
import type { EdgePin, Pin } from "../host/policy-rules.ts";
import type { Ipv6Path } from "../host/policy-routing6.ts";
import type { Logger } from "../lib/log.ts";

export interface UplinkRoute {
  sourceAddress: string;
  gateway?: string | null;
  interface?: string;
  table?: number;
}

export interface HostPort {
  createSwitcher(config: AgentConfig, routes: Map<string, UplinkRoute>): Switcher;
  /**
   * Per-uplink policy routing, so the agent's sockets bound to an uplink's source address leave
   * through it (`pin`: which of them); run again, it brings the rules up to date.
   */
  installUplinkRouting(uplinks: UplinkConfig[], pin: Pin): Promise<Map<string, UplinkRoute>> | Map<string, UplinkRoute>;
  removeUplinkRouting(routes: Map<string, UplinkRoute>): Promise<void> | void;
  createTunnelRestarter(tunnels: AgentConfig["tunnels"]): TunnelRestarter;
  /** Calls back soon after the kernel's routes change; returns the stop. */
  watchRoutes(onChange: () => void, log: Logger): () => void;
  /** The uplink's IPv6 path (a usable global address and an IPv6 default route on it), or null. */
  uplinkIpv6(uplink: UplinkConfig): Promise<Ipv6Path | null>;
  /** Per-uplink IPv6 rules for the agent's connections to the edge (`pin`), matching `paths` (config order; no pin: none). */
  routeIpv6(uplinks: UplinkConfig[], paths: readonly (Ipv6Path | null)[], pin: EdgePin | null): Promise<void>;
  unrouteIpv6(uplinks: UplinkConfig[]): Promise<void>;
  /** The uplink's router: configured, else read from the host's routes (null when there is none). */
  uplinkGateway(uplink: UplinkConfig, index: number): Promise<string | null>;
}
