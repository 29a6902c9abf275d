// The status pages are HTML files bundled as text (wrangler's default rule for `*.html`).
declare module "*.html" {
  const text: string;
  export default text;
}

// Build outputs the edge serves (agent/build.mjs), bundled as text by wrangler's default rule for `*.txt`.
declare module "*.txt" {
  const text: string;
  export default text;
}
