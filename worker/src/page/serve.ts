// Serves the status pages: static HTML with one inline script and one inline style, allowed by
// their hashes in a strict Content-Security-Policy (no CDN, no build step, nothing else runs).
const encoder = new TextEncoder();
const cspCache = new Map<string, Promise<string>>();

async function sha256(text: string): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", encoder.encode(text)));
  return `'sha256-${btoa(String.fromCharCode(...digest))}'`;
}

/** The policy for a page: its own inline blocks, same-origin fetches and WebSockets, nothing more. */
function csp(template: string): Promise<string> {
  let p = cspCache.get(template);
  if (!p) {
    const blocks = (tag: string) =>
      [...template.matchAll(new RegExp(`<${tag}>([\\s\\S]*?)</${tag}>`, "g"))].map((m) => sha256(m[1]!));
    p = Promise.all([Promise.all(blocks("script")), Promise.all(blocks("style"))]).then(([scripts, styles]) =>
      [
        "default-src 'none'",
        `script-src ${scripts.join(" ") || "'none'"}`,
        `style-src ${styles.join(" ") || "'none'"}`,
        "connect-src 'self'",
        "img-src 'self' data:",
        "form-action 'self'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
      ].join("; "),
    );
    cspCache.set(template, p);
  }
  return p;
}

export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/**
 * The page with `{{name}}` placeholders filled, each value HTML-escaped. Placeholders never sit
 * inside the script or style, so the hashes hold for every rendering.
 */
export async function page(
  template: string,
  values: Record<string, string> = {},
  status = 200,
  headers: Record<string, string> = {},
): Promise<Response> {
  const html = template.replace(/\{\{(\w+)\}\}/g, (_, k: string) => escapeHtml(values[k] ?? ""));
  return new Response(html, {
    status,
    headers: {
      "content-type": "text/html; charset=utf-8",
      "content-security-policy": await csp(template),
      "x-content-type-options": "nosniff",
      "x-frame-options": "DENY",
      // Not no-referrer: that makes browsers send `Origin: null` on the login form, which the origin check refuses.
      "referrer-policy": "same-origin",
      "cache-control": "no-store",
      ...headers,
    },
  });
}
