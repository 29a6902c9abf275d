// Which uplink a heartbeat really travelled through, judged by the public address (and ASN) the
// edge saw. Probes sit behind exactly one uplink, so their addresses are the reference.

export interface Observed {
  ip: string | null;
  asn: number | null;
}

/** Per uplink: the public address and ASN last seen from its probes. */
export type Learned = ReadonlyMap<string, Observed>;

export interface Attribution {
  /** The uplink this heartbeat is evidence for, or null when it proves nothing. */
  evidenceFor: string | null;
  /** Set when the heartbeat claims one uplink but came through another. */
  misroutedVia: string | null;
}

export function attribute(claimed: string, seen: Observed, learned: Learned): Attribution {
  for (const [uplink, ref] of learned) {
    if (uplink === claimed) continue;
    const sameIp = seen.ip !== null && ref.ip === seen.ip;
    // ASN only speaks when both uplinks' ASNs are known and differ (two ISPs, two networks).
    const claimedAsn = learned.get(claimed)?.asn ?? null;
    const sameAsn = seen.asn !== null && ref.asn === seen.asn && claimedAsn !== null && claimedAsn !== seen.asn;
    if (sameIp || sameAsn) return { evidenceFor: uplink, misroutedVia: uplink };
  }
  return { evidenceFor: claimed, misroutedVia: null };
}
