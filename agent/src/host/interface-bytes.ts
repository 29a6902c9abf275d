// The kernel's byte counters of an interface (/sys/class/net/IF/statistics): every byte through
// it, both ways, the LAN's included. Two small file reads, no process started.
import { readFileSync } from "node:fs";

export interface InterfaceBytes {
  /** Names the counting: this boot of the host and the interface's index (a re-created interface gets a new one). */
  counter: string;
  rx: number;
  tx: number;
}

const BOOT_ID = "/proc/sys/kernel/random/boot_id";

/** The interface's counters, or null when it is missing (down and gone, renamed). */
export function readInterfaceBytes(
  iface: string,
  sysNet = "/sys/class/net",
  bootIdFile = BOOT_ID,
): InterfaceBytes | null {
  try {
    const read = (f: string) => readFileSync(`${sysNet}/${iface}/${f}`, "utf8").trim();
    const count = (f: string) => Math.min(Number.MAX_SAFE_INTEGER, Number(read(`statistics/${f}`)));
    const boot = readFileSync(bootIdFile, "utf8").trim();
    const [rx, tx] = [count("rx_bytes"), count("tx_bytes")];
    if (!Number.isInteger(rx) || !Number.isInteger(tx)) return null;
    return { counter: `${boot}:${read("ifindex")}`.slice(0, 64), rx, tx };
  } catch {
    return null;
  }
}
