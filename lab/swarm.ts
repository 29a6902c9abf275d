// A real Docker Swarm on the lab's servers: dockerd inside each server's namespace (data and exec
// roots in the lab folder), the first server the manager, the others workers, and a tunnel service
// whose replicas hold a connection to the tunnel endpoint as cloudflared does, one per node. No
// registry here: the image is a busybox root filesystem, imported on each node. Everything it
// starts goes in the lab's cleanup, which runs even when a test fails.
import {
  chmodSync,
  closeSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  readdirSync,
  rmdirSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { dirname, join } from "node:path";
import { execFileSync } from "node:child_process";
import { installMissing } from "../test/setup/system-packages.mjs";
import { alive, labUnavailable, onPath, sh, waitUntil } from "./netns.ts";
import type { Lab, LabServer } from "./topology.ts";

const SWARM_PACKAGES = ["docker.io", "busybox-static", "conntrack"];
/** docker.io's own client, matched to its dockerd (another `docker` may come first on PATH). */
const DOCKER = "/usr/bin/docker";
const BUSYBOX = "/bin/busybox";
export const IMAGE = "wanwatch/tunnel:lab";
/** Where a replica answers GET /ready (200 while connected), published on its node in host mode. */
export const READY_PORT = 2000;

/** Why the Swarm lab cannot run here, or null; installs its packages first when it may. */
export function swarmUnavailable(): string | null {
  const why = labUnavailable();
  if (why) return why;
  installMissing(SWARM_PACKAGES);
  if (!onPath("dockerd") || !existsSync(DOCKER)) return "the Swarm lab needs Docker (apt-get install docker.io)";
  if (!existsSync(BUSYBOX)) return "the Swarm lab's image needs a static busybox (apt-get install busybox-static)";
  return null;
}

// The stand-in's two scripts. `nc -e` runs the session with the connection as its stdin and
// stdout: it keeps sending (cloudflared's keepalives) and ends when the endpoint closes or resets.
const TUNNEL = `#!/bin/sh
mkdir -p /www
httpd -p ${READY_PORT} -h /www
while :; do nc "$1" "$2" -e /session; sleep 0.2; done
`;
const SESSION = `#!/bin/sh
touch /www/ready
while echo "$HOSTNAME"; do sleep 1; done &
cat >/dev/null
kill $!
rm -f /www/ready
`;

/** A node's folder in the lab: data and exec roots, socket, log. */
const dockerDir = (labDir: string, server: string) => join(labDir, `docker-${server}`);

/**
 * A server's agent config for the `swarm` backend on this lab's swarm (LabSiteOptions.serverTunnel):
 * docker.io's client first on PATH, talking to the server's own dockerd, and the replica's ready port.
 */
export function swarmTunnel(
  labDir: string,
  service: string,
): (server: string) => { config: object; env: Record<string, string> } {
  return (server) => ({
    config: { backend: "swarm", service, timeoutMs: 30_000, readyUrl: `http://127.0.0.1:${READY_PORT}/ready` },
    env: {
      DOCKER_HOST: `unix://${join(dockerDir(labDir, server), "docker.sock")}`,
      DOCKER_CONFIG: dockerDir(labDir, server),
      PATH: `${dirname(DOCKER)}:${process.env.PATH}`,
    },
  });
}

export interface SwarmTask {
  id: string;
  node: string;
}

/** dockerd in one server's namespace. */
export class DockerNode {
  readonly server: LabServer;
  readonly dir: string;
  private readonly cgroup: string;

  constructor(server: LabServer, dir: string) {
    this.server = server;
    this.dir = dir;
    this.cgroup = server.ns.name;
  }

  get socket(): string {
    return `unix://${join(this.dir, "docker.sock")}`;
  }

  docker(...args: string[]): Promise<string> {
    return sh([DOCKER, "-H", this.socket, ...args], {
      env: { ...process.env, DOCKER_CONFIG: this.dir },
      timeoutMs: 60_000,
    });
  }

  async start(): Promise<void> {
    mkdirSync(this.dir, { recursive: true });
    // No DNS at all, so an image is never looked up in a registry (else every create and update waits on timeouts).
    writeFileSync(join(this.dir, "resolv.conf"), "nameserver 127.0.0.1\n");
    const log = openSync(join(this.dir, "dockerd.log"), "a");
    const d = this.dir;
    // `ip netns exec` remounts /sys, hiding the cgroup hierarchy dockerd needs: mount it again.
    const cgroups = existsSync("/sys/fs/cgroup/memory")
      ? `mount -t tmpfs -o mode=755 cgroup_root /sys/fs/cgroup
for c in cpu cpuacct cpuset memory devices freezer blkio pids; do mkdir -p /sys/fs/cgroup/$c; mount -t cgroup -o $c cgroup /sys/fs/cgroup/$c; done
mkdir -p /sys/fs/cgroup/systemd /sys/fs/cgroup/unified
mount -t cgroup -o none,name=systemd cgroup /sys/fs/cgroup/systemd
mount -t cgroup2 cgroup2 /sys/fs/cgroup/unified`
      : "mount -t cgroup2 cgroup2 /sys/fs/cgroup";
    const script = `set -e
hostname ${this.server.name}
${cgroups}
mount --bind ${d}/resolv.conf /etc/resolv.conf
exec dockerd --data-root ${d}/data --exec-root ${d}/exec --pidfile ${d}/docker.pid -H ${this.socket} --cgroup-parent /${this.cgroup} --storage-driver overlay2`;
    const child = this.server.ns.spawn(["unshare", "--uts", "sh", "-c", script], {
      stdio: ["ignore", log, log],
      env: { ...process.env, DOCKER_SERVICE_PREFER_OFFLINE_IMAGE: "1" },
    });
    child.unref();
    closeSync(log); // the child has its own copy
    await waitUntil(
      () =>
        this.docker("version").then(
          () => true,
          () =>
            child.exitCode === null
              ? false
              : Promise.reject(new Error(`dockerd in ${this.server.name} exited: ${this.logTail()}`)),
        ),
      `dockerd in ${this.server.name}`,
      30_000,
      100,
    );
  }

  private logTail(): string {
    return readFileSync(join(this.dir, "dockerd.log"), "utf8").trim().split("\n").slice(-5).join("\n");
  }

  /** dockerd's pid, from its pid file (0 before it wrote one). */
  pid(): number {
    const pidFile = join(this.dir, "docker.pid");
    return existsSync(pidFile) ? Number(readFileSync(pidFile, "utf8")) : 0;
  }

  /** Leaves the swarm, stops dockerd (its containerd and shims follow) and removes its cgroups. */
  async stop(): Promise<void> {
    await this.docker("swarm", "leave", "--force").catch(() => undefined);
    const pid = this.pid();
    if (pid > 0 && alive(pid)) {
      process.kill(pid, "SIGTERM");
      await waitUntil(() => !alive(pid), `dockerd in ${this.server.name} to stop`, 20_000, 100).catch(() => {
        process.kill(pid, "SIGKILL");
        return waitUntil(() => !alive(pid), `dockerd in ${this.server.name} to die`, 5_000);
      });
    }
    // `--cgroup-parent` made these on the host's hierarchies; they go once empty, children first.
    for (const root of ["/sys/fs/cgroup", ...readdirSync("/sys/fs/cgroup").map((h) => join("/sys/fs/cgroup", h))]) {
      const dir = join(root, this.cgroup);
      if (existsSync(dir)) removeDepthFirst(dir);
    }
  }
}

function removeDepthFirst(dir: string): void {
  for (const e of readdirSync(dir, { withFileTypes: true })) if (e.isDirectory()) removeDepthFirst(join(dir, e.name));
  try {
    rmdirSync(dir);
  } catch {
    // still busy: the namespace teardown kills what is left
  }
}

/** The lab's swarm: the first server the manager, the rest workers, the image on every node. */
export class LabSwarm {
  readonly nodes: DockerNode[];

  private constructor(nodes: DockerNode[]) {
    this.nodes = nodes;
  }

  get manager(): DockerNode {
    return this.nodes[0]!;
  }

  static async start(lab: Lab): Promise<LabSwarm> {
    const swarm = new LabSwarm(lab.servers.map((s) => new DockerNode(s, dockerDir(lab.dir, s.name))));
    lab.sets.onDestroy(() => swarm.stop());
    await Promise.all(swarm.nodes.map((n) => n.start()));
    const image = buildImage(join(lab.dir, "tunnel-image"));
    await Promise.all(swarm.nodes.map((n) => n.docker("import", "-c", "ENV PATH=/bin", image, IMAGE)));
    // The swarm on router 1's LAN, which a cut uplink leaves up.
    const addr = (n: DockerNode) => n.server.address(1);
    await swarm.manager.docker(
      "swarm",
      "init",
      "--advertise-addr",
      addr(swarm.manager),
      "--listen-addr",
      `${addr(swarm.manager)}:2377`,
    );
    const token = (await swarm.manager.docker("swarm", "join-token", "-q", "worker")).trim();
    for (const w of swarm.nodes.slice(1))
      await w.docker(
        "swarm",
        "join",
        "--token",
        token,
        "--advertise-addr",
        addr(w),
        "--listen-addr",
        `${addr(w)}:2377`,
        `${addr(swarm.manager)}:2377`,
      );
    await waitUntil(
      async () =>
        (await swarm.manager.docker("node", "ls", "--format", "{{.Status}}")).split("\n").filter((s) => s === "Ready")
          .length === swarm.nodes.length,
      "every node Ready",
      30_000,
      100,
    );
    return swarm;
  }

  /**
   * The tunnel service: one replica per node dialling `host:port`, its ready port published on
   * its node (host mode: the routing mesh needs IPVS, which this kernel lacks). Updates restart
   * both replicas at once, as a restart after a switch should.
   */
  async createTunnelService(name: string, host: string, port: number): Promise<void> {
    await this.manager.docker(
      "service",
      "create",
      "--detach",
      "--no-resolve-image",
      "--name",
      name,
      "--replicas",
      String(this.nodes.length),
      "--replicas-max-per-node",
      "1",
      "--stop-grace-period",
      "1s",
      "--update-parallelism",
      String(this.nodes.length),
      "--update-monitor",
      "1s",
      "--publish",
      `mode=host,target=${READY_PORT},published=${READY_PORT}`,
      IMAGE,
      "/tunnel",
      host,
      String(port),
    );
    await waitUntil(
      async () => (await this.tasks(name)).length === this.nodes.length,
      `${name}: a replica running on each node`,
      30_000,
      100,
    );
  }

  /** The service's running tasks. */
  async tasks(service: string): Promise<SwarmTask[]> {
    const out = await this.manager.docker(
      "service",
      "ps",
      service,
      "--filter",
      "desired-state=running",
      "--format",
      "{{.ID}} {{.Node}} {{.CurrentState}}",
    );
    return out
      .split("\n")
      .filter((l) => / Running /.test(l))
      .map((l) => {
        const [id, node] = l.split(" ");
        return { id: id!, node: node! };
      });
  }

  private async stop(): Promise<void> {
    // Workers first, so the manager never waits for them.
    for (const n of [...this.nodes].reverse()) await n.stop();
  }
}

/** A busybox root filesystem with the stand-in's scripts, as a tarball for `docker import`. */
function buildImage(dir: string): string {
  const root = join(dir, "rootfs");
  mkdirSync(join(root, "bin"), { recursive: true });
  mkdirSync(join(root, "etc"), { recursive: true });
  copyFileSync(BUSYBOX, join(root, "bin/busybox"));
  chmodSync(join(root, "bin/busybox"), 0o755);
  for (const applet of execFileSync(BUSYBOX, ["--list"], { encoding: "utf8" })
    .split("\n")
    .filter((a) => a && a !== "busybox"))
    symlinkSync("busybox", join(root, "bin", applet));
  writeFileSync(join(root, "etc/passwd"), "root:x:0:0:root:/:/bin/sh\n");
  writeFileSync(join(root, "tunnel"), TUNNEL, { mode: 0o755 });
  writeFileSync(join(root, "session"), SESSION, { mode: 0o755 });
  const tar = join(dir, "rootfs.tar");
  execFileSync("tar", ["-C", root, "-cf", tar, "."]);
  return tar;
}
