// What the edge saw of each uplink: the public address, ASN and round trips its probes report
// (the reference for attributing servers' heartbeats), and the address any evidence last came from.
import { attribute, type Attribution, type Observed } from "../attribution.ts";
import type { SiteStore, UplinkObservation } from "../store.ts";

export class Observations {
  private readonly byUplink = new Map<string, UplinkObservation>();
  /** Public address last seen per uplink from any agent's evidence (status only). */
  private readonly lastEvidenceIp = new Map<string, string>();

  constructor(private readonly store: SiteStore) {}

  load(): void {
    for (const o of this.store.observations()) this.byUplink.set(o.id, o);
  }

  /** Probes are the reference for each uplink's public address; a new one is written at once. */
  learn(
    uplink: string,
    seen: Observed,
    rtt: Pick<UplinkObservation, "rttMs" | "gatewayRttMs" | "path">,
    now: number,
  ): void {
    const prev = this.byUplink.get(uplink);
    const next: UplinkObservation = { id: uplink, ip: seen.ip, asn: seen.asn, ...rtt, at: now };
    this.byUplink.set(uplink, next);
    if (prev && prev.ip === next.ip && prev.asn === next.asn) return;
    this.store.transaction(() => {
      this.store.saveObservation(next);
      if (prev?.ip)
        this.store.appendEvents([
          {
            at: now,
            kind: "uplink-address",
            message: `${uplink}: public address ${prev.ip} → ${next.ip ?? "unknown"}`,
            data: { uplink, from: prev.ip, to: next.ip },
          },
        ]);
    });
  }

  /** Which uplink a server's heartbeat travelled through, judged by the probes' addresses. */
  attribute(claimed: string, seen: Observed): Attribution {
    const learned = new Map([...this.byUplink].map(([id, o]) => [id, { ip: o.ip, asn: o.asn }]));
    return attribute(claimed, seen, learned);
  }

  noteEvidence(uplink: string, seen: Observed): void {
    if (seen.ip) this.lastEvidenceIp.set(uplink, seen.ip);
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
