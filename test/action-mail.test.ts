/**
 * mail: through nodemailer to a real SMTP listener on 127.0.0.1 (test/helpers/smtp.ts), and
 * through a sendmail stand-in that records its argv and stdin. Log content must arrive as text.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createAction } from "../src/action/registry.ts";
import type { Action } from "../src/action/types.ts";
import { Fail2tsError } from "../src/util/errors.ts";
import { ev, memoryLog } from "./helpers/netns.ts";
import { decodeHeader, parseMail, type SmtpServer, startSmtp } from "./helpers/smtp.ts";

const HOSTILE = [
  "~! reboot",
  "~| /bin/sh -c 'touch /tmp/pwned'",
  "$(reboot) `reboot` ; rm -rf / ; 'quoted' \"dq\"",
  ".",
  "..",
  "Subject: forged",
  `long ${"x".repeat(1200)} end`,
  "café ünïcödé",
];

let smtp: SmtpServer;
const dir = mkdtempSync(join(tmpdir(), "f2t-mail-"));

beforeAll(async () => {
  smtp = await startSmtp({ auth: true });
});
afterAll(async () => {
  await smtp.close();
  rmSync(dir, { recursive: true, force: true });
});

function smtpAction(options: Record<string, unknown> = {}): Action {
  return createAction(
    {
      name: "mail",
      type: "mail",
      options: {
        host: "127.0.0.1",
        port: smtp.port,
        to: "admin@example.org",
        from: "f2t@example.org",
        ...options,
      },
    },
    { name: "sshd" },
    { log: memoryLog() },
  );
}

describe("mail over SMTP (nodemailer)", () => {
  test("a ban mail carries hostile log lines as literal text", async () => {
    const n = smtp.messages.length;
    await smtpAction({ user: "u", password: "p w" }).ban([
      ev("203.0.113.7", { matches: HOSTILE, failures: 7 }),
    ]);
    await smtp.waitFor(n + 1);
    const m = smtp.messages[n]!;
    expect(m.from).toBe("f2t@example.org");
    expect(m.to).toEqual(["admin@example.org"]);
    expect(m.auth).toBe("u:p w");
    const { headers, body } = parseMail(m.data);
    expect(decodeHeader(headers.get("subject")!)).toBe("[fail2ts] sshd: banned 203.0.113.7");
    expect(headers.get("content-type")).toContain("text/plain");
    expect(body).toContain("after 7 failures in jail sshd");
    // every hostile line arrives whole, on its own line
    const lines = body.split("\n");
    for (const h of HOSTILE) expect(lines).toContain(h);
  });

  test("log text in the subject cannot add headers or recipients", async () => {
    const n = smtp.messages.length;
    await smtpAction({ subject: "<jail>: <matches>" }).ban([
      ev("203.0.113.8", { matches: ["x\r\nBcc: victim@example.net\r\n\r\nbody?", "y\nX-Evil: 1"] }),
    ]);
    await smtp.waitFor(n + 1);
    const m = smtp.messages[n]!;
    expect(m.to).toEqual(["admin@example.org"]);
    const { headers, rawHeaders } = parseMail(m.data);
    expect(headers.has("bcc")).toBe(false);
    expect(headers.has("x-evil")).toBe(false);
    expect(rawHeaders).not.toMatch(/^(Bcc|X-Evil):/im);
    expect(decodeHeader(headers.get("subject")!)).toBe("sshd: x Bcc: victim@example.net body? y X-Evil: 1");
  });

  test("templates: <ip> inside a value is not substituted again", async () => {
    const n = smtp.messages.length;
    await smtpAction({ body: "ip=<ip> m=<matches> unknown=<nope>" }).ban([
      ev("203.0.113.9", { matches: ["<ip> <jail>"] }),
    ]);
    await smtp.waitFor(n + 1);
    expect(parseMail(smtp.messages[n]!.data).body.trim()).toBe("ip=203.0.113.9 m=<ip> <jail> unknown=<nope>");
  });

  test("many bans in one batch make one digest mail; restored bans mail nothing", async () => {
    const n = smtp.messages.length;
    const a = smtpAction({ digest: 5 });
    await a.ban([ev("198.51.100.1", { restored: true })]);
    await a.ban(Array.from({ length: 12 }, (_, i) => ev(`198.51.100.${i + 10}`)));
    await smtp.waitFor(n + 1);
    await Bun.sleep(100);
    expect(smtp.messages.length).toBe(n + 1);
    const { headers, body } = parseMail(smtp.messages[n]!.data);
    expect(decodeHeader(headers.get("subject")!)).toBe("[fail2ts] sshd: banned 12 addresses");
    expect(body).toContain("198.51.100.21");
  });

  test("unban mails only when asked", async () => {
    const n = smtp.messages.length;
    await smtpAction().unban([ev("203.0.113.10")]);
    await Bun.sleep(50);
    expect(smtp.messages.length).toBe(n);
    await smtpAction({ events: ["ban", "unban"] }).unban([ev("203.0.113.10")]);
    await smtp.waitFor(n + 1);
    expect(decodeHeader(parseMail(smtp.messages[n]!.data).headers.get("subject")!)).toBe(
      "[fail2ts] sshd: unbanned 203.0.113.10",
    );
  });

  test("an SMTP refusal is an action error; the retry delivers", async () => {
    const a = smtpAction();
    smtp.failNext = 451;
    const err = await a.ban([ev("203.0.113.11")]).catch((e) => e);
    expect(err).toBeInstanceOf(Fail2tsError);
    expect((err as Error).message).toMatch(/^mail ban: SMTP: .*451/);
    const n = smtp.messages.length;
    await a.ban([ev("203.0.113.11")]);
    await smtp.waitFor(n + 1);
  });

  test("no listener: an action error, not a hang", async () => {
    const a = createAction(
      {
        name: "mail",
        type: "mail",
        options: { host: "127.0.0.1", port: 1, to: "a@example.org", timeout: "2s" },
      },
      { name: "sshd" },
      { log: memoryLog() },
    );
    const err = await a.ban([ev("203.0.113.12")]).catch((e) => e);
    expect((err as Error).message).toMatch(/^mail ban: SMTP: .*ECONNREFUSED/);
  });

  test("addresses that could be options or header tricks are refused", () => {
    expect(() => smtpAction({ to: "-oQ/tmp/x@example.org" })).toThrow(/to/);
    expect(() => smtpAction({ to: "a@example.org\nBcc: b@example.org" })).toThrow(/to/);
    expect(() => smtpAction({ from: "a b@example.org" })).toThrow(/from/);
  });
});

describe("mail through sendmail", () => {
  test("argv is fixed (-i -f FROM -- TO...), the message goes on stdin", async () => {
    const fake = join(dir, "sendmail");
    const out = join(dir, "sendmail.out");
    writeFileSync(fake, `#!/bin/sh\nprintf '%s\\0' "$@" > "${out}.argv"\ncat > "${out}.stdin"\n`);
    chmodSync(fake, 0o755);
    const a = createAction(
      {
        name: "mail",
        type: "mail",
        options: {
          transport: "sendmail",
          sendmail: fake,
          to: ["root@localhost", "ops@example.org"],
          from: "f2t@host",
        },
      },
      { name: "sshd" },
      { log: memoryLog() },
    );
    await a.ban([ev("203.0.113.20", { matches: HOSTILE })]);
    const argv = readFileSync(`${out}.argv`, "utf8").split("\0").slice(0, -1);
    expect(argv).toEqual(["-i", "-f", "f2t@host", "--", "root@localhost", "ops@example.org"]);
    const { headers, body } = parseMail(readFileSync(`${out}.stdin`, "latin1"));
    expect(decodeHeader(headers.get("subject")!)).toBe("[fail2ts] sshd: banned 203.0.113.20");
    expect(headers.get("to")).toBe("root@localhost, ops@example.org");
    for (const h of HOSTILE) expect(body.split("\n")).toContain(h);
  });

  test("a failing sendmail is an action error with its stderr", async () => {
    const fake = join(dir, "sendmail-fail");
    writeFileSync(fake, "#!/bin/sh\ncat >/dev/null\necho 'sendmail: queue is full' >&2\nexit 75\n");
    chmodSync(fake, 0o755);
    const a = createAction(
      { name: "mail", type: "mail", options: { transport: "sendmail", sendmail: fake } },
      { name: "sshd" },
      { log: memoryLog() },
    );
    const err = await a.ban([ev("203.0.113.21")]).catch((e) => e);
    expect((err as Error).message).toBe(`mail ban: ${fake} exited 75: sendmail: queue is full`);
  });
});
