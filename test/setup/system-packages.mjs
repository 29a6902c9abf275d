#!/usr/bin/env node
// Before the suite: the Debian packages that the lab and browser tests need. As root with apt it
// installs what is missing (one line says what); elsewhere, or with WANWATCH_NO_APT=1, it installs
// nothing and those groups skip, each with its reason in the summary at the end of the run.
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { pathToFileURL } from "node:url";

/** Each package and the tests that need it (or, where another package serves too, the command that shows it is here). */
export const PACKAGES = {
  iproute2: "the network lab",
  nftables: "the network lab (NAT, loss)",
  python3: "the lab's slow uplink (delay line)",
  ethtool: "the lab's slow uplink (delay line)",
  "network-manager": "the nmcli server in the lab",
  "dnsmasq-base": "DHCP in the lab, the nmcli server",
  // Either busybox package will do (the Swarm lab installs the static one, which replaces it).
  busybox: { for: "the lab's plain DHCP client (udhcpc)", command: "busybox" },
  chromium: "the status page in a browser",
  faketime: "an agent with a skewed clock",
  "docker.io": "the Docker Swarm lab",
  "busybox-static": "the Docker Swarm lab (the tunnel image)",
  conntrack: "the Docker Swarm lab (container flows after a switch)",
  keepalived: "bench:peers (VRRP between the lab's routers)",
  "iputils-ping": "bench:peers (keepalived's track_script)",
};

const onPath = (cmd) => (process.env.PATH ?? "").split(":").some((d) => d && existsSync(`${d}/${cmd}`));
const installed = (pkg) => {
  const command = PACKAGES[pkg].command;
  if (command) return onPath(command);
  // biome-ignore lint/suspicious/noTemplateCurlyInString: dpkg-query's own format, not a template
  const status = spawnSync("dpkg-query", ["-W", "-f=${Status}", pkg], { encoding: "utf8" }).stdout;
  return status?.includes("install ok installed");
};

/** Installs whichever of `packages` are missing, when root with apt and not opted out; says so in one line. */
export function installMissing(packages) {
  if (process.env.WANWATCH_NO_APT === "1") return;
  if (
    process.platform !== "linux" ||
    process.getuid?.() !== 0 ||
    !existsSync("/usr/bin/apt-get") ||
    !existsSync("/usr/bin/dpkg-query")
  )
    return;
  const missing = packages.filter((p) => !installed(p));
  if (missing.length === 0) return;
  console.log(
    `wanwatch tests: installing Debian packages for the lab and browser tests: ${missing.join(" ")} (WANWATCH_NO_APT=1 skips this)`,
  );
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
  try {
    // apt's own chatter (debconf notes) is shown only if the install fails.
    execFileSync("apt-get", ["update", "-qq"], { env, stdio: "pipe" });
    execFileSync("apt-get", ["install", "-y", "-qq", "--no-install-recommends", ...missing], { env, stdio: "pipe" });
  } catch (err) {
    // Not fatal: the tests that need a missing package skip and say why.
    const said = `${err.stderr ?? ""}`.trim().split("\n").at(-1) || err.message.split("\n")[0];
    console.log(`wanwatch tests: the install failed (${said}); the tests that need those packages will be skipped`);
  }
}

// Run as a script (before the suite): everything; a test file run alone calls installMissing itself.
if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) installMissing(Object.keys(PACKAGES));
