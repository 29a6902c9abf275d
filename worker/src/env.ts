import type { SiteCoordinator } from "./site-coordinator.ts";
import type { SiteIndex } from "./site-index.ts";

export interface Env {
  SITES: DurableObjectNamespace<SiteCoordinator>;
  SITE_INDEX: DurableObjectNamespace<SiteIndex>;
  /** Worker secret guarding the admin API. */
  ADMIN_TOKEN?: string;
  /** Optional read-only token for status pages and the status API. */
  VIEWER_TOKEN?: string;
  /** "true": status pages and the status API are public (read-only). */
  PUBLIC_STATUS?: string;
  /** Multiplies each agent's message allowance (default 1); the throughput benchmark lifts it. */
  AGENT_RATE_FACTOR?: string;
  /** First retry delay of a failed notification, ms (default 5000); tests shorten it. */
  NOTIFY_RETRY_BASE_MS?: string;
}
