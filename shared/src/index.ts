export * from "./ids.ts";
export * from "./config.ts";
export * from "./admin.ts";
export * from "./messages.ts";
export * from "./status.ts";
export * from "./signing.ts";
export * from "./protocol.ts";
export * from "./zod-issues.ts";
