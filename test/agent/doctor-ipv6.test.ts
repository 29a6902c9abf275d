import { describe, expect, it } from "vitest";
import { ipv6Coverage } from "../../agent/src/cli/doctor.ts";

describe("doctor's IPv6 line", () => {
  it("says which uplinks carry IPv6, and what a switch to one without it means; never a failure", () => {
    expect(ipv6Coverage(["isp1", "isp2"], [])).toEqual({ ok: true, text: "IPv6: on no uplink (IPv4 only)" });
    expect(ipv6Coverage(["isp1", "isp2"], ["isp1", "isp2"])).toEqual({
      ok: true,
      text: "IPv6 on isp1 and isp2: it moves with IPv4",
    });
    expect(ipv6Coverage(["isp1", "isp2"], ["isp1"])).toEqual({
      ok: true,
      text: "IPv6 on isp1 only (isp2 has no global IPv6 address and default route): while isp2 is active, IPv6 keeps leaving through isp1",
    });
    expect(ipv6Coverage(["a", "b", "c"], ["b"]).text).toBe(
      "IPv6 on b only (a and c have no global IPv6 address and default route): while a or c is active, IPv6 keeps leaving through b",
    );
  });
});
