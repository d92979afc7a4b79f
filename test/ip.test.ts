import { describe, expect, test } from "bun:test";
import { cidrMatcher, ipv6Prefix, normalizeHost, normalizeIP, parseIPv4 } from "../src/util/ip.ts";

describe("host validation and normalisation", () => {
  test("IPv4 is strict", () => {
    expect(parseIPv4("192.0.2.1")).toBe(0xc0000201);
    for (const bad of ["256.0.0.1", "1.2.3", "1.2.3.4.5", "01.2.3.4", "1..2.3", "1.2.3.4 ", "a.b.c.d", ""]) {
      expect(parseIPv4(bad)).toBe(-1);
    }
  });
  test("IPv6 is compressed and lower case; mapped v4 becomes v4", () => {
    expect(normalizeIP("2001:0DB8:0000:0000:0000:0000:0000:0001")).toBe("2001:db8::1");
    expect(normalizeIP("2001:db8:0:0:1:0:0:1")).toBe("2001:db8::1:0:0:1");
    expect(normalizeIP("::ffff:192.0.2.7")).toBe("192.0.2.7");
    expect(normalizeIP("[2001:db8::1]")).toBe("2001:db8::1");
    expect(normalizeIP("::")).toBe("::");
    expect(normalizeIP("1:2:3:4:5:6:7:8")).toBe("1:2:3:4:5:6:7:8");
  });
  test("hostile captures are neither addresses nor names", () => {
    for (const bad of [
      "$(reboot)",
      "1.2.3.4;rm",
      "`id`",
      "a b",
      "host\nname",
      "-rf",
      "..",
      "999.1.1.1",
      "x".repeat(300),
      "a'b",
      'a"b',
      "host^name",
      "1.2.3.4/../../etc",
    ]) {
      expect(normalizeHost(bad)).toBeNull();
    }
  });
  test("DNS names are kept lower case; a hint restricts the kind", () => {
    expect(normalizeHost("Mail.Example.COM")).toEqual({ kind: "dns", value: "mail.example.com" });
    expect(normalizeHost("192.0.2.1", "ip6")).toBeNull();
    expect(normalizeHost("example.com", "ip4")).toBeNull();
    expect(normalizeHost("10.0.0.1", "dns")).toBeNull();
  });
  test("CIDR matcher", () => {
    const m = cidrMatcher(["127.0.0.1/8", "::1", "192.0.2.0/24", "2001:db8::/32", "10.1.2.3"]);
    expect(m.has("127.9.9.9")).toBe(true);
    expect(m.has("192.0.2.200")).toBe(true);
    expect(m.has("192.0.3.1")).toBe(false);
    expect(m.has("10.1.2.3")).toBe(true);
    expect(m.has("10.1.2.4")).toBe(false);
    expect(m.has("::1")).toBe(true);
    expect(m.has("2001:db8:ffff::5")).toBe(true);
    expect(m.has("2001:db9::5")).toBe(false);
    expect(m.has("::ffff:192.0.2.9")).toBe(true);
    expect(() => cidrMatcher(["10.0.0.0/33"])).toThrow();
    expect(() => cidrMatcher(["nonsense"])).toThrow();
  });
  test("IPv6 prefix", () => {
    expect(ipv6Prefix("2001:db8:1:2:3:4:5:6", 64)).toBe("2001:db8:1:2::/64");
    expect(ipv6Prefix("2001:db8:1:2:3:4:5:6", 48)).toBe("2001:db8:1::/48");
  });
});
