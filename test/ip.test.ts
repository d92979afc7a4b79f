import { describe, expect, test } from "bun:test";
import ipaddr from "ipaddr.js";
import { cidrMatcher, ipv6Prefix, normalizeHost, normalizeIP, parseIPv4, parseIPv6 } from "../src/util/ip.ts";

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

  test("IPv6 without an IPv4 tail is read as ipaddr.js reads it, and written as RFC 5952 says", () => {
    // ipaddr.js, the reference: null when it is not an address, else its parts and RFC 5952 text
    const ref = (s: string) => {
      const t = s.startsWith("[") && s.endsWith("]") ? s.slice(1, -1) : s;
      if (t.length < 2 || t.length > 45 || !t.includes(":") || !/^[0-9A-Fa-f:.]+$/.test(t)) return null;
      if (!ipaddr.IPv6.isValid(t)) return null;
      const a = ipaddr.IPv6.parse(t);
      return { parts: a.parts.slice(), text: a.toRFC5952String() };
    };
    let x = 12345;
    const rnd = (n: number) => {
      x = (Math.imul(x, 1103515245) + 12345) >>> 0;
      return (x >>> 8) % n;
    };
    const texts = [
      "::",
      "::1",
      "1::",
      "1:2:3:4:5:6:7::",
      "::2:3:4:5:6:7:8",
      "1:2:3:4:5:6:7:8::",
      "::1:2:3:4:5:6:7:8",
    ];
    texts.push(
      ...[
        "1:2:3:4:5:6:7",
        ":::",
        "1:::2",
        "[::1]",
        "[1::2]",
        "12345::",
        "0000:0000::0",
        ":1::",
        "1::2::3",
        "1::g",
      ],
    );
    for (let k = 0; k < 60000; k++) {
      // 0-10 groups of 0-5 hex digits, "::" somewhere or not, stray colons now and then
      const groups = rnd(11);
      const gap = rnd(3) === 0 ? -1 : rnd(groups + 1);
      let s = "";
      for (let g = 0; g < groups; g++) {
        s += g === gap ? "::" : g > 0 ? ":" : "";
        const len = rnd(7) === 0 ? rnd(6) : 1 + rnd(4);
        for (let d = 0; d < len; d++) s += "0123456789abcdefABCDEF"[rnd(22)];
      }
      if (gap === groups) s += "::";
      if (rnd(10) === 0) s = `:${s}`;
      if (rnd(10) === 0) s += ":";
      texts.push(s);
    }
    for (let k = 0; k < 20000; k++) {
      let s = "";
      for (let d = 1 + rnd(20); d > 0; d--) s += "0f:g "[rnd(5)];
      texts.push(s);
    }
    let valid = 0;
    for (const s of texts) {
      const want = ref(s);
      if (want) valid++;
      expect({ s, parts: parseIPv6(s) }).toEqual({ s, parts: want?.parts ?? null });
      if (want && !(want.parts[5] === 0xffff && want.parts.slice(0, 5).every((p) => p === 0)))
        expect(normalizeHost(s, "ip6")).toEqual({ kind: "ip6", value: want.text });
    }
    expect(valid).toBeGreaterThan(10000);
  });
});
