// What the edge saw of each uplink: the public address, ASN and round trips its probes report
// (the reference for attributing servers' heartbeats), and the address any evidence last came from.
import { attribute, prefix64, type Attribution, type Observed } from "../attribution.ts";
import type { NewEvent } from "./events.ts";
import type { SiteStore, UplinkObservation } from "../store.ts";

export class Observations {
  private readonly byUplink = new Map<string, UplinkObservation>();
  /** Public address last seen per uplink from any agent's evidence (status only). */
  private readonly lastEvidenceIp = new Map<string, string>();

  constructor(private readonly store: SiteStore) {}

  load(): void {
    for (const o of this.store.observations()) this.byUplink.set(o.id, o);
  }

  /**
   * Probes are the reference for each uplink's public IPv4 address and IPv6 prefix (a probe
   * heartbeats over both where it has IPv6); a new one is written at once, and is an event.
   */
  learn(
    uplink: string,
    seen: Observed,
    rtt: Pick<UplinkObservation, "rttMs" | "gatewayRttMs" | "path">,
    now: number,
  ): void {
    const prev = this.byUplink.get(uplink);
    const v6 = seen.ip !== null && prefix64(seen.ip) !== null;
    const next: UplinkObservation = {
      id: uplink,
      ip: v6 ? (prev?.ip ?? null) : seen.ip,
      ip6: v6 ? seen.ip : (prev?.ip6 ?? null),
      asn: seen.asn,
      ...rtt,
      at: now,
    };
    this.byUplink.set(uplink, next);
    if (prev && prev.ip === next.ip && prev.ip6 === next.ip6 && prev.asn === next.asn) return;
    const events: NewEvent[] = [];
    if (prev?.ip && prev.ip !== next.ip)
      events.push({
        at: now,
        kind: "uplink-address",
        message: `${uplink}: public address ${prev.ip} → ${next.ip ?? "unknown"}`,
        data: { uplink, from: prev.ip, to: next.ip },
      });
    const [from, to] = [prev?.ip6, next.ip6].map((a) => (a ? prefix64(a) : null));
    if (from && to && from !== to)
      events.push({
        at: now,
        kind: "uplink-prefix",
        message: `${uplink}: IPv6 prefix ${from} → ${to}`,
        data: { uplink, from, to },
      });
    this.store.transaction(() => {
      this.store.saveObservation(next);
      if (events.length) this.store.appendEvents(events);
    });
  }

  /** Which uplink a server's heartbeat travelled through, judged by the probes' addresses. */
  attribute(claimed: string, seen: Observed): Attribution {
    const learned = new Map([...this.byUplink].map(([id, o]) => [id, { ip: o.ip, ip6: o.ip6, asn: o.asn }]));
    return attribute(claimed, seen, learned);
  }

  noteEvidence(uplink: string, seen: Observed): void {
    // The status shows the uplink's IPv4 address; IPv6 heartbeats would make it flicker.
    if (seen.ip && prefix64(seen.ip) === null) this.lastEvidenceIp.set(uplink, seen.ip);
  }

  /** Writes every uplink's latest figures (the checkpoint does, inside its transaction). */
  save(): void {
    for (const o of this.byUplink.values()) this.store.saveObservation(o);
  }

  /** Per uplink, for the status: the probes' view, else the address of the last evidence. */
  forStatus(now: number): Map<string, UplinkObservation> {
    const observations = new Map(this.byUplink);
    for (const [uplink, ip] of this.lastEvidenceIp)
      if (!observations.has(uplink))
        observations.set(uplink, { id: uplink, ip, asn: null, rttMs: null, gatewayRttMs: null, at: now });
    return observations;
  }
}
