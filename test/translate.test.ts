import { describe, expect, test } from "bun:test";
import { expandTags } from "../src/filter/tags.ts";
import { compilePyRegex, translateRegex } from "../src/filter/translate.ts";
import { Fail2tsError } from "../src/util/errors.ts";

const tr = (py: string) => translateRegex(py).source;

describe("Python → JS regex translation", () => {
  test("named groups and back-references", () => {
    expect(tr("(?P<user>\\w+) (?P=user)")).toBe("(?<user>\\w+) \\k<user>");
    expect(compilePyRegex("(?P<u>a)-(?P=u)").test("a-a")).toBe(true);
  });
  test("comments are dropped", () => {
    expect(tr("a(?#note)b")).toBe("ab");
  });
  test("leading global flags become JS flags", () => {
    expect(translateRegex("(?i)failed").flags).toBe("i");
    expect(compilePyRegex("(?i)failed").test("FAILED")).toBe(true);
    expect(translateRegex("(?ms)x").flags).toBe("ms");
  });
  test("scoped flags are kept", () => {
    expect(compilePyRegex("a(?i:b)c").test("aBc")).toBe(true);
    expect(compilePyRegex("a(?i:b)c").test("aBC")).toBe(false);
  });
  test("\\A and \\Z anchor the whole subject", () => {
    const re = compilePyRegex("\\Afoo\\Z");
    expect(re.test("foo")).toBe(true);
    expect(re.test("foo\n")).toBe(false);
    expect(compilePyRegex("x\\Z", "m").test("x\ny")).toBe(false);
    // Without `u`, JS would read \Z as the letter Z; translated, "Z" never matches.
    expect(compilePyRegex("a\\Z").test("aZ")).toBe(false);
  });
  test("escaped punctuation Python allows and JS `u` mode rejects", () => {
    expect(compilePyRegex("a\\:b\\-c\\\"d\\'e").test("a:b-c\"d'e")).toBe(true);
    expect(compilePyRegex("[\\w\\-.:]+").test("a-b.c:d")).toBe(true);
  });
  test("a dash after a class escape is literal, as in Python", () => {
    expect(tr("[\\w-.]")).toBe("[\\w\\-.]");
    expect(compilePyRegex("^[\\w-.]+$").test("a-b.c")).toBe(true);
  });
  test("lone braces and brackets are literal", () => {
    expect(compilePyRegex("a{b}").test("a{b}")).toBe(true);
    expect(compilePyRegex("x{2}").test("xx")).toBe(true);
    expect(compilePyRegex("x{,2}y").test("y")).toBe(true);
    expect(compilePyRegex("[]a]").test("]")).toBe(true);
    expect(compilePyRegex("a]").test("a]")).toBe(true);
  });
  test("lookbehind and lazy quantifiers pass through", () => {
    expect(compilePyRegex("(?<=x)y+?").exec("xyy")?.[0]).toBe("y");
    expect(compilePyRegex("(?<!x)y").test("xy")).toBe(false);
  });
  test("what JS cannot express is an error", () => {
    expect(() => translateRegex("(?>ab)")).toThrow(Fail2tsError);
    expect(() => translateRegex("a++")).toThrow(/possessive/);
    expect(() => translateRegex("(?(1)a|b)")).toThrow(/conditional/);
    expect(() => compilePyRegex("(unclosed")).toThrow(Fail2tsError);
    expect(() => translateRegex("\\q")).toThrow(/bad escape/);
  });
  test("verbose mode strips whitespace and comments", () => {
    expect(compilePyRegex("(?x) a b # comment\n c").test("abc")).toBe(true);
  });
});

describe("Fail2ban tags", () => {
  const host = compilePyRegex(expandTags("from <HOST>$"));
  test("<HOST> captures v4, v4-mapped v6, v6 and names", () => {
    expect(host.exec("from 192.0.2.1")?.groups?.ip4).toBe("192.0.2.1");
    expect(host.exec("from ::ffff:192.0.2.1")?.groups?.ip4).toBe("192.0.2.1");
    expect(host.exec("from 2001:db8::1")?.groups?.ip6).toBe("2001:db8::1");
    expect(host.exec("from [2001:db8::1]")?.groups?.ip6).toBe("2001:db8::1");
    expect(host.exec("from mail.example.com")?.groups?.dns).toBe("mail.example.com");
  });
  test("<ADDR> and usedns=no take no names", () => {
    expect(compilePyRegex(expandTags("from <ADDR>$")).test("from example.com")).toBe(false);
    expect(compilePyRegex(expandTags("from <HOST>$", { useDns: "no" })).test("from example.com")).toBe(false);
  });
  test("<IP4>, <IP6>, <DNS>, <CIDR>, <SUBNET>", () => {
    expect(compilePyRegex(expandTags("^<IP4>$")).test("10.0.0.1")).toBe(true);
    expect(compilePyRegex(expandTags("^<IP4>$")).test("::1")).toBe(false);
    expect(compilePyRegex(expandTags("^<IP6>$")).test("::1")).toBe(true);
    expect(compilePyRegex(expandTags("^<DNS>$")).exec("a.b")?.groups?.dns).toBe("a.b");
    expect(compilePyRegex(expandTags("^<ADDR>/<CIDR>$")).exec("10.0.0.0/8")?.groups?.cidr).toBe("8");
    expect(compilePyRegex(expandTags("^<SUBNET>$")).exec("2001:db8::/32")?.groups?.cidr).toBe("32");
  });
  test("<F-NAME> captures, <F-ID/>, <F-PORT/>, id → fid", () => {
    const re = compilePyRegex(
      expandTags(
        "^<F-USER>\\w+</F-USER> <F-ALT_USER1>\\w+</F-ALT_USER1> <F-ID>\\d+</F-ID> <F-PORT/> <F-NOFAIL>x</F-NOFAIL>",
      ),
    );
    expect(re.exec("bob eve 42 ssh x")?.groups).toEqual(
      Object.assign(Object.create(null), {
        user: "bob",
        alt_user1: "eve",
        fid: "42",
        fport: "ssh",
        nofail: "x",
      }),
    );
    expect(compilePyRegex(expandTags("^<F-ID/>$")).exec("abc")?.groups?.fid).toBe("abc");
  });
  test("<F-MLFID>, <F-MLFFORGET>, <F-MLFGAINED> are plain named groups", () => {
    const g = compilePyRegex(
      expandTags("<F-MLFID>\\d+</F-MLFID> <F-MLFFORGET><F-MLFGAINED>ok</F-MLFGAINED></F-MLFFORGET>"),
    ).exec("7 ok")?.groups;
    expect(g?.mlfid).toBe("7");
    expect(g?.mlfforget).toBe("ok");
    expect(g?.mlfgained).toBe("ok");
  });
  test("<SKIPLINES> spans lines", () => {
    const re = compilePyRegex(expandTags("^a$<SKIPLINES>^b <HOST>$"), "m");
    expect(re.exec("a\nx\ny\nb 10.0.0.1\n")?.groups?.ip4).toBe("10.0.0.1");
  });
  test("unknown tags stay literal", () => {
    expect(expandTags("<foo>")).toBe("<foo>");
    expect(expandTags("</F-USER>")).toBe("</F-USER>");
  });
});
