// The bundle gets the package version from esbuild's `define`; running from source says "dev".
declare const __WANWATCH_VERSION__: string | undefined;

export const VERSION: string = typeof __WANWATCH_VERSION__ === "string" ? __WANWATCH_VERSION__ : "0.0.0-dev";
