import app from "./http/app.ts";

export { SiteCoordinator } from "./site-coordinator.ts";
export default app;
