import app from "./http/app.ts";

export { SiteCoordinator } from "./site-coordinator.ts";
export { SiteIndex } from "./site-index.ts";
export default app;
