// One server namespace with two LANs (lan1, lan2) and a default route on each, and nobody else:
// enough for a server agent to install its policy routing and switch routes, with no edge reachable.
import { NetnsSet, type Netns } from "./netns.ts";

export async function createTwoLanHost(): Promise<{ ns: Netns; destroy: () => Promise<void> }> {
  const sets = new NetnsSet("h");
  try {
    const ns = await sets.add("srv");
    for (const n of [1, 2]) {
      // A veth pair whose far end stays unaddressed: a LAN with carrier and nobody on it.
      await ns.ip("link", "add", `lan${n}`, "type", "veth", "peer", "name", `far${n}`);
      await ns.ip("link", "set", `far${n}`, "up");
      await ns.ip("addr", "add", `192.168.${n}.21/24`, "dev", `lan${n}`);
      await ns.ip("link", "set", `lan${n}`, "up");
      await ns.ip("route", "add", "default", "via", `192.168.${n}.1`, "dev", `lan${n}`, "metric", String(99 + n));
    }
    return { ns, destroy: () => sets.destroy() };
  } catch (err) {
    await sets.destroy();
    throw err;
  }
}
