// What the edge saw of each uplink: the public address, ASN and round trips its probes report
// (the reference for attributing servers' heartbeats), and the address any evidence last came from.
import type { SiteConfig } from "#shared";
import { attribute, familyOf, prefix64, type Attribution, type Observed } from "../attribution.ts";
import { agentSilenceMs } from "../engine/cadence.ts";
import { heardOver, judgeIpv6, type FamilyHeard } from "../ipv6-heard.ts";
import type { NewEvent } from "./events.ts";
import type { SiteStore, UplinkObservation } from "../store.ts";

export class Observations {
  private readonly byUplink = new Map<string, UplinkObservation>();
  /** Public address last seen per uplink from any agent's evidence (status only). */
  private readonly lastEvidenceIp = new Map<string, string>();
  /** Per uplink, what was heard over each family (memory only: a wake starts afresh). */
  private readonly families = new Map<string, FamilyHeard>();

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

  /**
   * Evidence through `uplink`: its family noted, and every uplink's IPv6 judged (deadlines are met
   * by heartbeats, as the decision's are). Returns the events it yields.
   */
  noteEvidence(config: SiteConfig, uplink: string, seen: Observed, now: number): NewEvent[] {
    const family = familyOf(seen.ip);
    // The status shows the uplink's IPv4 address; IPv6 heartbeats would make it flicker.
    if (seen.ip && family === 4) this.lastEvidenceIp.set(uplink, seen.ip);
    // Twice the uplink's downAfterMs (at its slowest cadence): a silence of one family for longer is news.
    const windowOf = (id: string) => agentSilenceMs(config, { role: "server" }, id);
    const events: NewEvent[] = [];
    const noted = heardOver(this.families.get(uplink), uplink, family, windowOf(uplink) / 2, now);
    this.families.set(uplink, noted.heard);
    if (noted.event) events.push(noted.event);
    for (const [id, h] of this.families) {
      const judged = judgeIpv6(h, id, windowOf(id), now);
      this.families.set(id, judged.heard);
      if (judged.event) events.push(judged.event);
    }
    return events;
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
    for (const [uplink, h] of this.families) {
      const o = observations.get(uplink) ?? {
        id: uplink,
        ip: null,
        asn: null,
        rttMs: null,
        gatewayRttMs: null,
        at: now,
      };
      observations.set(uplink, { ...o, ipv6HeardAt: h.ipv6At });
    }
    return observations;
  }
}
