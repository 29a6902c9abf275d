// The edge's addresses, which the per-uplink rules pin: known at once for a literal, looked up for a name.
import { describe, expect, it } from "vitest";
import { edgeAddresses, edgePort } from "../../agent/src/daemon/edge-address.ts";

describe("the edge's addresses and port", () => {
  it("a literal address is known without a lookup", async () => {
    const edge = edgeAddresses("http://203.0.113.10:8787");
    expect(edge.known()).toEqual(["203.0.113.10"]);
    expect(await edge()).toEqual(["203.0.113.10"]);
  });

  it("an IPv6 literal gives no IPv4 address to pin", async () => {
    const edge = edgeAddresses("http://[2001:db8:ff::10]:8787");
    expect(edge.known()).toEqual([]);
    expect(await edge()).toEqual([]);
  });

  it("a name is known only once looked up, then keeps its last answer", async () => {
    const edge = edgeAddresses("http://localhost:8787");
    expect(edge.known()).toEqual([]);
    const found = await edge();
    expect(found).toContain("127.0.0.1");
    expect(edge.known()).toEqual(found);
  });

  it("the port is the URL's, else its scheme's", () => {
    expect(edgePort("https://wanwatch.example.workers.dev")).toBe(443);
    expect(edgePort("http://203.0.113.10")).toBe(80);
    expect(edgePort("http://203.0.113.10:8787")).toBe(8787);
  });
});
