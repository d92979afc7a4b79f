/** Registry: validation messages, built-ins, instances, dry-run; and the small pure helpers. */
import { describe, expect, test } from "bun:test";
import { parseTarget, targetString, v6Mask, withPrefix6 } from "../src/action/addr.ts";
import { recordingExec } from "../src/action/exec.ts";
import { jailMatch, parsePorts, parseProtocols } from "../src/action/ports.ts";
import {
  ACTION_TYPES,
  BUILTIN_ACTIONS,
  builtinSpec,
  createAction,
  validateActionSpec,
} from "../src/action/registry.ts";
import { shellScript, substitute } from "../src/action/template.ts";
import { Fail2tsError } from "../src/util/errors.ts";
import { ev, memoryLog } from "./helpers/netns.ts";

describe("validateActionSpec", () => {
  const v = (type: string, options: Record<string, unknown>) =>
    validateActionSpec({ name: "x", type, options });

  test("valid specs have no errors; `type` inside options is ignored", () => {
    expect(v("nftables", { type: "nftables", blocktype: "drop", port: "ssh,80", allports: false })).toEqual(
      [],
    );
    expect(
      v("webhook", { url: "https://example.org/h", timeout: "5s", retries: 3, headers: { a: "b" } }),
    ).toEqual([]);
    expect(
      v("mail", { to: ["a@example.org"], host: "smtp.example.org", port: 587, starttls: "require" }),
    ).toEqual([]);
  });

  test("errors are `key: what is wrong`", () => {
    expect(v("nftables", { blocktyp: "drop" })).toEqual([
      "blocktyp: unknown option (known: allports, blocktype, hook, nft, port, priority, protocol, table)",
    ]);
    expect(v("nftables", { blocktype: "tarpit" })).toEqual([
      'blocktype: must be one of "reject", "drop", got "tarpit"',
    ]);
    expect(v("ipset", { maxelem: 1.5 })).toEqual(["maxelem: must be an integer, got 1.5"]);
    expect(v("webhook", { url: "http://x", headers: { a: 1 } })).toEqual([
      'headers: must be a table of strings, got {"a":1}',
    ]);
    expect(v("webhook", {})).toEqual(["url: required"]);
    expect(v("nftables", { port: "ssh,nosuchservice" })[0]).toMatch(
      /^port: .*unknown service "nosuchservice"/,
    );
    expect(v("iptables", { protocol: "icmp" })[0]).toMatch(/^protocol: /);
    expect(v("firewalld", {})[0]).toMatch(/^type: unknown action type "firewalld" \(known: nftables, /);
  });

  test("types and built-ins", () => {
    expect(ACTION_TYPES).toEqual([
      "nftables",
      "iptables",
      "ipset",
      "pf",
      "hostsdeny",
      "mail",
      "webhook",
      "command",
      "script",
    ]);
    for (const name of [
      "nftables",
      "nftables-allports",
      "iptables",
      "iptables-allports",
      "ipset",
      "pf",
      "hostsdeny",
    ]) {
      expect(BUILTIN_ACTIONS).toContain(name);
    }
    expect(builtinSpec("nftables-allports")).toEqual({
      name: "nftables-allports",
      type: "nftables",
      options: { allports: true },
    });
    expect(builtinSpec("nope")).toBeUndefined();
    for (const name of BUILTIN_ACTIONS) {
      const spec = builtinSpec(name)!;
      expect(validateActionSpec(spec)).toEqual([]);
      const a = createAction(
        spec,
        { name: "sshd", port: "ssh" },
        { log: memoryLog(), exec: recordingExec() },
      );
      expect(a.name).toBe(name);
    }
  });
});

describe("createAction", () => {
  test("refuses unsafe jail names, bad banprefix6, invalid specs — as config errors", () => {
    const spec = builtinSpec("nftables")!;
    for (const name of ["ssh d", "a;b", "x}", "", "ä", "../x", 'a"b']) {
      const err = (() => {
        try {
          createAction(spec, { name }, { log: memoryLog() });
        } catch (e) {
          return e;
        }
      })();
      expect(err).toBeInstanceOf(Fail2tsError);
      expect((err as Fail2tsError).code).toBe("config");
    }
    expect(() => createAction(spec, { name: "sshd", banprefix6: 200 }, { log: memoryLog() })).toThrow(
      /banprefix6/,
    );
    expect(() =>
      createAction(
        { name: "n", type: "nftables", options: { bogus: 1 } },
        { name: "sshd" },
        { log: memoryLog() },
      ),
    ).toThrow("action n: bogus: unknown option");
  });

  test("dry-run logs what would run and runs nothing", async () => {
    const log = memoryLog();
    const a = createAction(builtinSpec("nftables")!, { name: "sshd", port: "22" }, { log, dryRun: true });
    await a.start();
    await a.ban([ev("192.0.2.1")]);
    const text = log.lines.join("\n");
    expect(text).toContain("dry-run: nft -f -");
    expect(text).toContain("add chain inet fail2ts f2t-sshd { type filter hook input priority filter - 1;");
    expect(text).toContain("add element inet fail2ts f2t-sshd-v4 { 192.0.2.1 timeout ");
  });
});

describe("helpers", () => {
  test("ports and protocols", () => {
    expect(parsePorts("ssh")).toEqual([[22, 22]]);
    expect(parsePorts("443, http ,1000:2000,1500:2500")).toEqual([
      [80, 80],
      [443, 443],
      [1000, 2500],
    ]);
    expect(parsePorts("")).toEqual([]);
    expect(parsePorts("all")).toEqual([]);
    expect(() => parsePorts("22;reboot")).toThrow(/bad port/);
    expect(() => parsePorts("70000")).toThrow(/bad port/);
    expect(() => parsePorts("2000:1000")).toThrow(/reversed/);
    expect(parseProtocols(undefined)).toEqual(["tcp"]);
    expect(parseProtocols("udp,tcp,udp")).toEqual(["udp", "tcp"]);
    expect(parseProtocols("all")).toEqual([]);
    expect(jailMatch("22", "all", false)).toEqual({ protocols: [], ports: [] });
    expect(jailMatch("22", "tcp", true)).toEqual({ protocols: ["tcp"], ports: [] });
  });

  test("addresses: validated, canonical, v6 prefix applied", () => {
    expect(parseTarget("192.0.2.1")).toEqual({ family: 4, addr: "192.0.2.1", prefix: 32 });
    expect(parseTarget("2001:DB8:0::1")).toEqual({ family: 6, addr: "2001:db8::1", prefix: 128 });
    expect(parseTarget("::ffff:192.0.2.1")).toEqual({ family: 4, addr: "192.0.2.1", prefix: 32 });
    expect(parseTarget("192.0.2.77/24")).toEqual({ family: 4, addr: "192.0.2.0", prefix: 24 });
    for (const bad of [
      "192.0.2.256",
      "1.2.3",
      "fe80::1%eth0",
      "1.2.3.4/33",
      "1.2.3.4 ",
      "x",
      "1.2.3.4/",
      "-1.2.3.4",
    ]) {
      expect(parseTarget(bad)).toBeUndefined();
    }
    const t = withPrefix6(parseTarget("2001:db8:1:2:3:4:5:6")!, 64);
    expect(targetString(t)).toBe("2001:db8:1:2::/64");
    expect(withPrefix6(parseTarget("192.0.2.1")!, 64).prefix).toBe(32);
    expect(v6Mask(64)).toBe("ffff:ffff:ffff:ffff::");
    expect(v6Mask(56)).toBe("ffff:ffff:ffff:ff00::");
  });

  test("templates: one pass; shell scripts reference variables, never values", () => {
    expect(substitute("<ip> <jail> <x>", { ip: "<jail>", jail: "j" })).toBe("<jail> j <x>");
    const known = new Set(["ip", "matches"]);
    expect(shellScript("echo <ip> \"a <ip>\" 'b <ip>' \\<ip> <other>", known)).toBe(
      `echo "\${F2T_IP}" "a \${F2T_IP}" 'b '"\${F2T_IP}"'' \\<ip> <other>`,
    );
  });
});
