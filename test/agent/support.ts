// Test-only helpers for the agent's tests: a fresh folder, an agent's files, a proxy that cannot carry WebSockets.
import { createServer, request, type IncomingMessage, type Server } from "node:http";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export function tempDir(prefix = "wanwatch-test-"): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/** A secret file (mode 0600) and a config file in a fresh folder. */
export function agentFiles(
  config: Record<string, unknown>,
  secret = "test-secret-0123456789abcdef0123456789",
): { dir: string; configPath: string; secretPath: string; stateDir: string } {
  const dir = tempDir();
  const secretPath = join(dir, "secret");
  writeFileSync(secretPath, `${secret}\n`, { mode: 0o600 });
  const stateDir = join(dir, "state");
  const configPath = join(dir, "agent.yaml");
  writeFileSync(configPath, JSON.stringify({ secretFile: secretPath, stateDir, ...config }, null, 2));
  return { dir, configPath, secretPath, stateDir };
}

/**
 * A plain reverse proxy in front of the edge that cannot carry WebSockets (like some middleboxes):
 * agents behind it heartbeat over HTTP, each request seen by `onRequest`. Resolves with its URL.
 */
export async function httpOnlyProxy(
  edgeUrl: string,
  onRequest: (req: IncomingMessage) => void = () => undefined,
): Promise<{ url: string; close: () => void }> {
  const target = new URL(edgeUrl);
  const proxy: Server = createServer((req, res) => {
    onRequest(req);
    const up = request(
      { host: target.hostname, port: target.port, path: req.url, method: req.method, headers: req.headers },
      (r) => {
        res.writeHead(r.statusCode ?? 502, r.headers);
        r.pipe(res);
      },
    );
    up.on("error", () => res.writeHead(502).end());
    req.pipe(up);
  });
  proxy.on("upgrade", (_req, socket) => socket.end("HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\n\r\n"));
  await new Promise<void>((r) => proxy.listen(0, "127.0.0.1", r));
  return { url: `http://127.0.0.1:${(proxy.address() as { port: number }).port}`, close: () => proxy.close() };
}
