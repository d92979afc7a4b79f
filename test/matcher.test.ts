/** The matcher: prefregex, ignoreregex, multi-line buffers, sessions (mlfid), hostile lines. */
import { describe, expect, test } from "bun:test";
import { builtinSource } from "../src/filter/builtin.ts";
import { compileFilter, FilterMatcher, loadFilterSpec, openFilter } from "../src/filter/index.ts";

const NOW = Date.UTC(2026, 5, 1) / 1000;

function filterOf(toml: string, opts: Record<string, string> = {}) {
  const spec = loadFilterSpec({ name: "t", file: "t.toml", text: toml }, opts, (n) => builtinSource(n));
  return new FilterMatcher(compileFilter(spec, { now: () => NOW }), { now: () => NOW });
}

describe("matcher", () => {
  test("the date is cut out before matching; time is the line's", () => {
    const m = filterOf(`description = "t"\nfailregex = ['^ bad login from <HOST>$']`);
    const r = m.processLine("2026-05-01 10:00:00 bad login from 192.0.2.1");
    expect(r.failure?.id).toBe("192.0.2.1");
    expect(r.dateTemplate).not.toBeNull();
  });

  test("prefregex narrows the text; its groups join the failure", () => {
    const m = filterOf(
      `description = "t"\nprefregex = '^\\s*app\\[<F-PID>\\d+</F-PID>\\]: <F-CONTENT>.+</F-CONTENT>$'\nfailregex = ['^denied <HOST>$']`,
    );
    expect(m.processLine("May  1 10:00:00 app[7]: denied 192.0.2.2").failure?.fields.pid).toBe("7");
    expect(m.processLine("May  1 10:00:00 other[7]: denied 192.0.2.2").failure).toBeNull();
  });

  test("ignoreregex wins over failregex", () => {
    const m = filterOf(
      `description = "t"\nfailregex = ['^ fail from <HOST>']\nignoreregex = ['from 192\\.0\\.2\\.99']`,
    );
    expect(m.processLine("May  1 10:00:00 fail from 192.0.2.1").failure?.id).toBe("192.0.2.1");
    const r = m.processLine("May  1 10:00:00 fail from 192.0.2.99");
    expect(r.failure).toBeNull();
    expect(r.ignored).toBe(true);
  });

  test("maxlines: a failure spread over lines, with <SKIPLINES>", () => {
    const m = filterOf(
      `description = "t"\nmaxlines = 4\nfailregex = ['^ login from <HOST>$<SKIPLINES>^ login failed$']`,
    );
    expect(m.processLine("May  1 10:00:00 login from 192.0.2.3").failure).toBeNull();
    expect(m.processLine("May  1 10:00:01 unrelated").failure).toBeNull();
    const r = m.processLine("May  1 10:00:02 login failed");
    expect(r.failure?.id).toBe("192.0.2.3");
    expect(r.failure?.matches).toEqual([
      "May  1 10:00:00 login from 192.0.2.3",
      "May  1 10:00:02 login failed",
    ]);
  });

  test("sessions: a helper line gives the address, a later line fails, a success forgives", () => {
    const m = openFilter("sshd", {}, { now: () => NOW });
    const mm = new FilterMatcher(m, { now: () => NOW });
    expect(
      mm.processLine("May  1 10:00:00 h sshd[5]: Connection from 192.0.2.4 port 1 on 192.0.2.1 port 22")
        .failure,
    ).toBeNull();
    const r = mm.processLine(
      "May  1 10:00:01 h sshd[5]: Disconnecting: Too many authentication failures [preauth]",
    );
    expect(r.failure?.id).toBe("192.0.2.4");
    // Another pid is another session.
    expect(
      mm.processLine("May  1 10:00:02 h sshd[6]: Disconnecting: Too many authentication failures [preauth]")
        .failure,
    ).toBeNull();
  });

  test("hostile and broken lines never throw and never yield a bad id", () => {
    const f = openFilter("sshd[mode=aggressive]", {}, { now: () => NOW });
    const m = new FilterMatcher(f, { now: () => NOW });
    const hostile = [
      "May  1 10:00:00 h sshd[1]: Failed password for root from $(reboot) port 22 ssh2",
      "May  1 10:00:00 h sshd[1]: Failed password for root from `id` port 22 ssh2",
      "May  1 10:00:00 h sshd[1]: Failed password for root from 1.2.3.4;rm -rf / port 22 ssh2",
      "May  1 10:00:00 h sshd[1]: Invalid user x from 192.0.2.1'\"$(x) port 1",
      "May  1 10:00:00 h sshd[1]: Invalid user x from 256.256.256.256 port 1",
      "May  1 10:00:00 h sshd[1]: Invalid user x from -rf port 1",
      "May  1 10:00:00 h sshd[1]: Invalid user \0\x01\x02 from 192.0.2.1\0 port 1",
      "\uFFFD\uFFFD\uFFFD",
      "",
      "x".repeat(100000),
      "May  1 10:00:00 h sshd[1]: " + "Failed password for ".repeat(2000),
      "May 99 99:99:99 h sshd[1]: Invalid user x from 192.0.2.1",
    ];
    for (const l of hostile) {
      const r = m.processLine(l);
      if (r.failure) expect(r.failure.id).toMatch(/^(?:[0-9.]+|[0-9a-f:]+|[a-z0-9_.-]+)$/);
    }
    // The injected user name does not become the address.
    const inj = m.processLine(
      "May  1 10:00:00 h sshd[1]: Failed password for invalid user x from 10.0.0.1 from 192.0.2.77 port 22 ssh2",
    );
    expect(inj.failure?.id).toBe("192.0.2.77");
  });

  test("sshd's Failed lines: the user is the name after 'invalid user'; a forged address is never taken", () => {
    const f = openFilter("sshd", {}, { now: () => NOW });
    const at = "May  1 10:00:00 h sshd[1]: Failed password for";
    const cases: Array<[string, string, string]> = [
      [`${at} invalid user postgres from 192.0.2.1 port 22 ssh2`, "192.0.2.1", "postgres"],
      [`${at} root from 192.0.2.2 port 22 ssh2`, "192.0.2.2", "root"],
      [`${at} root from 192.0.2.3 port 22 on 10.0.0.1 ssh2`, "192.0.2.3", "root"],
      [`${at} root from 192.0.2.4 port 22 ssh2: RSA SHA256:x`, "192.0.2.4", "root"],
      [`${at} invalid user a b from 192.0.2.5 port 22 ssh2`, "192.0.2.5", "a b"],
      // names holding a whole forged tail: the address is the one sshd wrote last
      [
        `${at} invalid user x from 10.0.0.1 port 1 ssh2 from 192.0.2.6 port 22 ssh2`,
        "192.0.2.6",
        "x from 10.0.0.1 port 1 ssh2",
      ],
      [
        `${at} invalid user x from 10.0.0.1 port 1 on from 192.0.2.7 port 22 ssh2`,
        "192.0.2.7",
        "x from 10.0.0.1 port 1 on",
      ],
      [`${at} x from 10.0.0.1 port 1 from 192.0.2.8 port 22`, "192.0.2.8", "x from 10.0.0.1 port 1"],
    ];
    for (const [line, id, user] of cases) {
      const r = new FilterMatcher(f, { now: () => NOW }).processLine(line);
      expect([r.failure?.id, r.failure?.fields.user]).toEqual([id, user]);
    }
  });

  test("IPv6 is normalised, IPv4-mapped IPv6 becomes IPv4", () => {
    const m = filterOf(`description = "t"\nfailregex = ['^ fail from <HOST>$']`);
    expect(m.processLine("May  1 10:00:00 fail from 2001:DB8:0:0::1").failure?.id).toBe("2001:db8::1");
    expect(m.processLine("May  1 10:00:00 fail from ::ffff:192.0.2.5").failure?.id).toBe("192.0.2.5");
    expect(m.processLine("May  1 10:00:00 fail from Host.Example.COM").failure).toMatchObject({
      id: "host.example.com",
      kind: "dns",
    });
  });

  test("<F-ID> without a host gives a raw id; alt_user fills user", () => {
    const m = filterOf(
      `description = "t"\nfailregex = ['^ token <F-ID>\\w+</F-ID> rejected(?: for <F-ALT_USER>\\w+</F-ALT_USER>)?$']`,
    );
    expect(m.processLine("May  1 10:00:00 token abc123 rejected for bob").failure).toMatchObject({
      id: "abc123",
      kind: "raw",
      fields: { user: "bob" },
    });
  });

  test("a filter needs a failregex; prefregex needs <F-CONTENT>", () => {
    expect(() => filterOf(`description = "t"`)).toThrow(/failregex: a filter needs at least one/);
    expect(() => filterOf(`description = "t"\nprefregex = '^x'\nfailregex = ['<HOST>']`)).toThrow(
      /F-CONTENT/,
    );
  });

  test("interpolation: nested names, list splicing, unknown names", () => {
    const m = filterOf(
      `description = "t"\nfailregex = ['%(rx_%(kind)s)s']\n[options]\nkind = "a"\n[definitions]\nword = 'denied'\nrx_a = ['^ %(word)s <HOST>$', '^ refused <HOST>$']\nrx_b = []`,
    );
    expect(m.processLine("May  1 10:00:00 refused 192.0.2.8").failure?.id).toBe("192.0.2.8");
    expect(() => filterOf(`description = "t"\nfailregex = ['%(nope)s']`)).toThrow(
      /unknown option or definition %\(nope\)s/,
    );
  });
});

test("an entry with two references is a string, not one name", () => {
  const m = filterOf(
    `description = "t"\nfailregex = ['%(a)s x%(b)s']\n[definitions]\na = '^ login failed'\nb = ' from <HOST>$'`,
  );
  expect(m.processLine("May  1 10:00:00 login failed x from 192.0.2.9").failure?.id).toBe("192.0.2.9");
});
