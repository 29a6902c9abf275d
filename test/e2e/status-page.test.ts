// The status page in a real browser (Debian's Chromium, headless) against the real local edge
// (workerd), with simulated hosts heartbeating over the real protocol: login, rendering, live
// updates when the primary uplink is cut, escaping, and a phone-sized screen.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { SiteEvent } from "#shared";
import { startSimWorld } from "../../demo/sim-world.ts";
import { browserUnavailable, launchBrowser, type HeadlessBrowser } from "../../tools/browser.ts";
import { freePort } from "../../tools/local-edge.ts";

const why = browserUnavailable();
const policy = { heartbeatMs: 500, downAfterMs: 1_500, failbackAfterMs: 60_000, minDwellMs: 1_000 };

describe.skipIf(why)(`status page in Chromium${why ? ` — skipped: ${why}` : ""}`, () => {
  let world: Awaited<ReturnType<typeof startSimWorld>>;
  let browser: HeadlessBrowser;
  let dir: string;
  /** Errors the pages raised (CSP violations included): there must be none. */
  const pageErrors: string[] = [];

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "wanwatch-browser-"));
    [world, browser] = await Promise.all([
      startSimWorld(dir, policy, await freePort(), { publicStatus: false, stateDir: join(dir, "edge") }),
      launchBrowser(),
    ]);
  }, 90_000);

  afterAll(async () => {
    await Promise.all([world?.stop(), browser?.close()]);
    rmSync(dir, { recursive: true, force: true });
  });

  /** `expectErrors`: the page provokes an error answer on purpose (its console reports it). */
  async function newPage(viewport = { width: 1280, height: 900 }, expectErrors = false): Promise<Page> {
    const context = await browser.browser.newContext({ viewport });
    const page = await context.newPage();
    page.on("pageerror", (e) => pageErrors.push(e.message));
    page.on("console", (m) => {
      if (m.type() === "error" && !expectErrors) pageErrors.push(m.text());
    });
    return page;
  }

  async function signIn(page: Page, path: string): Promise<void> {
    await page.goto(`${world.edgeUrl}${path}`);
    await page.fill("#token", world.viewerToken);
    await Promise.all([page.waitForURL(`${world.edgeUrl}${path}`), page.click("button[type=submit]")]);
  }

  const admin = (method: string, path: string, body?: unknown) =>
    fetch(`${world.edgeUrl}${path}`, {
      method,
      headers: { authorization: `Bearer ${world.adminToken}`, "content-type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });

  it("sends a visitor to the login form, refuses a wrong token, and comes back signed in", async () => {
    const page = await newPage(undefined, true);
    const res = await page.goto(`${world.edgeUrl}/sites/${world.site}`);
    expect(new URL(page.url()).pathname).toBe("/login");
    expect(res?.status()).toBe(200);
    await page.fill("#token", "not-the-token");
    const [refused] = await Promise.all([
      page.waitForResponse((r) => r.url().endsWith("/login") && r.request().method() === "POST"),
      page.click("button[type=submit]"),
    ]);
    expect(refused.status()).toBe(401);
    await expect.poll(() => page.textContent(".message")).toContain("not this edge's viewer or admin token");
    const cookies = await page.context().cookies();
    expect(cookies).toEqual([]);

    await page.fill("#token", world.viewerToken);
    await Promise.all([page.waitForURL(`${world.edgeUrl}/sites/${world.site}`), page.click("button[type=submit]")]);
    const [session] = await page.context().cookies();
    expect(session).toMatchObject({ name: "wanwatch_session", httpOnly: true, sameSite: "Strict" });
    expect(session!.value).not.toContain(world.viewerToken);
    expect(page.url()).not.toContain(world.viewerToken);
    await page.context().close();
  });

  it("is not green while an enrolled agent has never connected, and says which", async () => {
    const page = await newPage();
    await signIn(page, `/sites/${world.site}`);
    await expect.poll(() => page.getAttribute("#banner", "class"), { timeout: 30_000 }).toBe("banner auto");
    expect((await admin("POST", `/v1/sites/${world.site}/agents`, { id: "srv9", role: "server" })).status).toBe(201);
    await expect.poll(() => page.getAttribute("#banner", "class"), { timeout: 15_000 }).toBe("banner attention");
    expect(await page.textContent("#banner")).toContain("Never connected: srv9.");
    expect((await admin("DELETE", `/v1/sites/${world.site}/agents/srv9`)).status).toBe(200);
    await expect.poll(() => page.getAttribute("#banner", "class"), { timeout: 15_000 }).toBe("banner auto");
    expect(await page.textContent("#banner")).not.toContain("Never connected");
    await page.context().close();
  });

  it("renders the site, then follows a cut of the primary live, without reloading", async () => {
    const page = await newPage();
    await signIn(page, `/sites/${world.site}`);
    await expect.poll(() => page.textContent("#conn"), { timeout: 15_000 }).toBe("live");
    await expect.poll(() => page.textContent("#banner .big"), { timeout: 30_000 }).toBe("Active: Fiber (isp1)");
    await expect.poll(() => page.locator("#uplinks .uplink").count()).toBe(2);
    await expect.poll(() => page.textContent('[data-uplink="isp1"] .state')).toBe("up");
    await expect.poll(() => page.textContent('[data-uplink="isp2"] .state'), { timeout: 15_000 }).toBe("up");
    expect(await page.textContent('[data-uplink="isp1"] dd:nth-of-type(3)')).toMatch(/^203\.0\.113\.1\b/);
    expect(await page.locator("#agents tr").count()).toBe(4);
    expect(await page.textContent('[data-agent="srv1"] td[data-label="Role"]')).toBe("server · tunnels");
    await expect.poll(() => page.textContent('[data-agent="srv1"] td[data-label="Applied"]')).toBe("1");
    expect(await page.locator("#events li").count()).toBeGreaterThan(3);

    // Mark this document: a reload would lose it. Then note when the page first shows isp2 active.
    await page.evaluate(() => {
      (window as any).__sameDocument = true;
      new MutationObserver(() => {
        if (
          !(window as any).__switchedAt &&
          document.querySelector("#banner .big")?.textContent === "Active: LTE (isp2)"
        )
          (window as any).__switchedAt = Date.now();
      }).observe(document.getElementById("banner")!, { childList: true, subtree: true, characterData: true });
    });
    await world.cut();
    await expect.poll(() => page.textContent("#banner .big"), { timeout: 15_000 }).toBe("Active: LTE (isp2)");
    await expect.poll(() => page.textContent('[data-uplink="isp1"] .state'), { timeout: 5_000 }).toBe("down");
    expect(await page.evaluate(() => (window as any).__sameDocument)).toBe(true);
    expect(await page.locator('#uplinks .uplink.active[data-uplink="isp2"]').count()).toBe(1);
    await expect.poll(() => page.locator("#events li .kind.switch").count()).toBeGreaterThanOrEqual(2);
    expect(await page.locator('[data-uplink="isp1"] rect.down').count()).toBe(1);

    const events = (await (
      await fetch(`${world.edgeUrl}/v1/sites/${world.site}/events?limit=50`, {
        headers: { authorization: `Bearer ${world.viewerToken}` },
      })
    ).json()) as SiteEvent[];
    const failover = events.find((e) => e.kind === "switch" && e.data?.reason === "failover")!;
    const shownAt = (await page.evaluate(() => (window as any).__switchedAt)) as number;
    console.log(
      `[status page] failover recorded by the edge → shown in the browser: ${shownAt - failover.at} ms (same machine clock)`,
    );
    await world.restore();
    await page.context().close();
  });

  it("shows strings from the site as text, never as markup", async () => {
    const reason = `<img src=x onerror="window.__xss=1">`;
    expect(
      (await admin("POST", `/v1/sites/${world.site}/override`, { uplink: "isp2", forSeconds: 60, reason })).status,
    ).toBe(200);
    const page = await newPage();
    await signIn(page, `/sites/${world.site}`);
    await expect.poll(() => page.textContent("#banner"), { timeout: 15_000 }).toContain(reason);
    await expect.poll(() => page.textContent("#events")).toContain(reason);
    expect(await page.evaluate(() => (window as any).__xss)).toBeUndefined();
    expect(await page.locator("#banner img, #events img").count()).toBe(0);
    expect((await admin("DELETE", `/v1/sites/${world.site}/override`)).status).toBe(200);
    await page.context().close();
  });

  it("fits a phone screen and lists the sites", async () => {
    const page = await newPage({ width: 390, height: 844 });
    await signIn(page, "/");
    await expect.poll(() => page.locator("li.site").count(), { timeout: 15_000 }).toBe(1);
    expect(await page.textContent("li.site .name")).toBe(world.site);
    await Promise.all([page.waitForURL(`${world.edgeUrl}/sites/${world.site}`), page.click("li.site a")]);
    await expect.poll(() => page.locator("#agents tr").count(), { timeout: 15_000 }).toBe(4);
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    expect(overflow).toBeLessThanOrEqual(0);
    await page.context().close();
  });

  it("shows a notification target that cannot be reached, with what is pending and its last error", async () => {
    const config = await (await admin("GET", `/v1/sites/${world.site}`)).json();
    // Nothing listens on port 9: every send is refused.
    expect(
      (
        await admin("PUT", `/v1/sites/${world.site}`, {
          ...config,
          notify: [{ kind: "webhook", url: "http://127.0.0.1:9/hooks/secret-3e1f" }],
        })
      ).status,
    ).toBe(200);
    try {
      const page = await newPage();
      await signIn(page, `/sites/${world.site}`);
      await expect.poll(() => page.isHidden("#notify"), { timeout: 15_000 }).toBe(false);
      // A switch, so that there is something to notify.
      const other = (await world.status()).activeUplink === "isp2" ? "isp1" : "isp2";
      expect(
        (await admin("POST", `/v1/sites/${world.site}/override`, { uplink: other, forSeconds: 60, reason: "notify" }))
          .status,
      ).toBe(200);
      const row = page.locator("#notify-targets tr");
      await expect.poll(() => row.textContent(), { timeout: 15_000 }).toContain("1 (1 retrying)");
      expect(await row.locator("td").first().textContent()).toBe("webhook (127.0.0.1:9)");
      expect(await row.locator("td.err").textContent()).toMatch(/^could not connect/);
      expect(await page.textContent("body")).not.toContain("secret-3e1f");
      expect((await admin("DELETE", `/v1/sites/${world.site}/override`)).status).toBe(200);
      await page.context().close();
    } finally {
      await admin("PUT", `/v1/sites/${world.site}`, config);
    }
  });

  it("shows a metered uplink's data this period against its cap", async () => {
    const config = await (await admin("GET", `/v1/sites/${world.site}`)).json();
    const uplinks = config.uplinks.map((u: { id: string }) =>
      u.id === "isp2" ? { ...u, metered: { capMB: 10_000, resetDay: 15 } } : u,
    );
    expect((await admin("PUT", `/v1/sites/${world.site}`, { ...config, uplinks })).status).toBe(200);
    try {
      const page = await newPage();
      await signIn(page, `/sites/${world.site}`);
      const isp2 = page.locator('[data-uplink="isp2"] dd.data-use');
      await expect
        .poll(() => isp2.textContent(), { timeout: 15_000 })
        .toMatch(/^0 MB of 10,000 MB \(0 %\) · resets \d{4}-\d{2}-15 UTC$/);
      expect(await isp2.locator("meter").getAttribute("max")).toBe("100");
      expect(await page.locator('[data-uplink="isp1"] dd.data-use').count()).toBe(0);
      await page.context().close();
    } finally {
      await admin("PUT", `/v1/sites/${world.site}`, config);
    }
  });

  it("raised no script errors and no CSP violations on any page", () => {
    expect(pageErrors).toEqual([]);
  });
});
