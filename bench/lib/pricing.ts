// Cloudflare's bill for a day of one site, from the units the edge really used, priced with the
// published rates in bench/rates.json (one file, with its sources and the date they were read).
import { readFileSync } from "node:fs";

export const rates = JSON.parse(readFileSync(new URL("../rates.json", import.meta.url), "utf8"));

/** Billable units of one site for one day. */
export interface DailyUnits {
  workerRequests: number;
  doRequests: number;
  doGbSeconds: number;
  rowsRead: number;
  rowsWritten: number;
}

/** Each Free-plan allowance, and how much of it a day uses (1 = all of it). */
export function freeShares(u: DailyUnits): Record<keyof DailyUnits, number> {
  const w = rates.workers.free;
  const d = rates.durableObjects.free;
  return {
    workerRequests: u.workerRequests / w.requestsPerDay,
    doRequests: u.doRequests / d.requestsPerDay,
    doGbSeconds: u.doGbSeconds / d.gbSecondsPerDay,
    rowsRead: u.rowsRead / d.rowsReadPerDay,
    rowsWritten: u.rowsWritten / d.rowsWrittenPerDay,
  };
}

export const fitsFree = (u: DailyUnits) => Object.values(freeShares(u)).every((s) => s <= 1);

/** The Workers Paid bill for a month of `sites` such sites, USD (sites are independent objects). */
export function paidMonthlyUsd(u: DailyUnits, sites: number): number {
  const w = rates.workers.paid;
  const d = rates.durableObjects.paid;
  const month = (x: number) => x * sites * rates.daysPerMonth;
  const over = (used: number, included: number, usdPerMillion: number, ceil = false) => {
    const millions = Math.max(0, used - included) / 1e6;
    return (ceil ? Math.ceil(millions) : millions) * usdPerMillion;
  };
  // Durable Objects round each overage up to the next billing unit (a million); Workers do not.
  const ceil = d.overageRounding === "ceilToUnit";
  return (
    w.baseUsdPerMonth +
    over(month(u.workerRequests), w.includedRequestsPerMonth, w.usdPerMillionRequests) +
    over(month(u.doRequests), d.includedRequestsPerMonth, d.usdPerMillionRequests, ceil) +
    over(month(u.doGbSeconds), d.includedGbSecondsPerMonth, d.usdPerMillionGbSeconds, ceil) +
    over(month(u.rowsRead), d.includedRowsReadPerMonth, d.usdPerMillionRowsRead, ceil) +
    over(month(u.rowsWritten), d.includedRowsWrittenPerMonth, d.usdPerMillionRowsWritten, ceil)
  );
}
