// The systemd unit `agent install` writes: as little privilege as the role needs. A probe only
// sends heartbeats: an unprivileged user, no capabilities. A server changes routes (CAP_NET_ADMIN)
// and restarts the tunnel, whose backend may need root's files (docker's socket, ~/.kube).
import type { AgentConfig } from "../config/schema.ts";
import { CONFIG_REFERENCE } from "../config/reference.ts";

export const SERVICE = "wanwatch.service";
export const PROBE_USER = "wanwatch";

/** The folder systemd creates and owns for the agent: stateDir's default. */
const STATE_DIRECTORY = "/var/lib/wanwatch";

export interface UnitInput {
  config: Pick<AgentConfig, "role" | "stateDir" | "switch" | "tunnels">;
  configPath: string;
  node: string;
  bundle: string;
}

function serverLines(config: UnitInput["config"]): string[] {
  const lines = [
    "# Routes and policy-routing rules need CAP_NET_ADMIN; nothing else is granted.",
    "CapabilityBoundingSet=CAP_NET_ADMIN",
    "AmbientCapabilities=CAP_NET_ADMIN",
  ];
  // Each tunnel backend reaches its service manager as root: docker's socket, PID 1's socket, a kubeconfig.
  const t = config.tunnels;
  const backends = new Set(t.backend === "pinned" ? Object.values(t.replicas).map((r) => r.backend) : [t.backend]);
  if (backends.has("kubernetes"))
    lines.push(
      "# kubectl reads root's ~/.kube/config and writes its cache there.",
      "ProtectHome=read-only",
      "ReadWritePaths=-/root/.kube",
    );
  else lines.push("ProtectHome=yes");
  if (backends.has("command"))
    lines.push(
      "# A tunnel command that needs more (files to write, capabilities) gets it in a drop-in: systemctl edit wanwatch",
    );
  return lines;
}

export function unitFile(u: UnitInput): string {
  const server = u.config.role === "server";
  const identity = server
    ? ["User=root", ...serverLines(u.config)]
    : [
        `User=${PROBE_USER}`,
        `Group=${PROBE_USER}`,
        "# A probe only sends heartbeats: no capabilities.",
        "CapabilityBoundingSet=",
        "ProtectHome=yes",
      ];
  const state =
    u.config.stateDir === STATE_DIRECTORY
      ? ["StateDirectory=wanwatch", "StateDirectoryMode=0700"]
      : [`ReadWritePaths=${u.config.stateDir}`];
  return [
    `# wanwatch agent (${u.config.role}), written by \`wanwatch agent install\`. Config: ${u.configPath}`,
    `# Reference: ${CONFIG_REFERENCE}.`,
    "[Unit]",
    `Description=wanwatch agent (${u.config.role}): dual-uplink failover, directed by the edge`,
    "Wants=network-online.target",
    `After=network-online.target${u.config.switch.backend === "nmcli" ? " NetworkManager.service" : ""}`,
    "",
    "[Service]",
    "Type=simple",
    `ExecStart=${u.node} ${u.bundle} agent run --config ${u.configPath}`,
    // A SIGKILL or a crash leaves a server's policy routing behind: removed after every stop.
    ...(server ? [`ExecStopPost=${u.node} ${u.bundle} agent unroute --config ${u.configPath}`] : []),
    "Restart=on-failure",
    "RestartSec=2",
    "# Exit 2 is a config error or a revoked agent: restarting cannot fix it.",
    "RestartPreventExitStatus=2",
    "# The agent handles SIGTERM: closes its channels and removes its policy routing.",
    "KillSignal=SIGTERM",
    "TimeoutStopSec=15",
    ...identity,
    ...state,
    "NoNewPrivileges=yes",
    "PrivateTmp=yes",
    "PrivateDevices=yes",
    "ProtectSystem=strict",
    "ProtectKernelTunables=yes",
    "ProtectKernelModules=yes",
    "ProtectControlGroups=yes",
    "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK",
    "RestrictNamespaces=yes",
    "LockPersonality=yes",
    "",
    "[Install]",
    "WantedBy=multi-user.target",
    "",
  ].join("\n");
}
