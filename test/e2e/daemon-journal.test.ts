/**
 * The journal backend end to end, with a fake `journalctl` on PATH that serves a JSON-lines file
 * the way `journalctl -f -o json [--after-cursor=C | -n 0] MATCHES...` would.
 */
import { afterEach, beforeAll, expect, test } from "bun:test";
import { appendFileSync, chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { binary, Env, until } from "./daemon-helpers.ts";

const envs: Env[] = [];
afterEach(async () => {
  for (const e of envs.splice(0)) {
    if (process.env.KEEP) console.log(e.dir, e.logText());
    else await e.cleanup();
  }
});
beforeAll(() => {
  binary();
}, 120000);

/** The fake journalctl, a Bun script: a single process, so stopping it stops everything. */
const FAKE = `#!${process.execPath}
import { appendFileSync, readFileSync, statSync } from "node:fs";
const args = process.argv.slice(2);
appendFileSync(process.env.JOURNAL_ARGS, args.join(" ") + "\\n");
const cursor = args.find((a) => a.startsWith("--after-cursor="))?.slice(15);
const file = process.env.JOURNAL_FILE;
let lines = readFileSync(file, "utf8").split("\\n").filter(Boolean);
let sent = lines.length; // -n 0: only what comes next
if (cursor) {
  const at = lines.findIndex((l) => JSON.parse(l).__CURSOR === cursor);
  sent = at + 1;
}
for (;;) {
  lines = readFileSync(file, "utf8").split("\\n").filter(Boolean);
  if (lines.length > sent) {
    process.stdout.write(lines.slice(sent).join("\\n") + "\\n");
    sent = lines.length;
  }
  await Bun.sleep(20);
}
`;

let n = 0;
function entry(ip: string): string {
  n++;
  return `${JSON.stringify({
    __CURSOR: `s=abc;i=${n}`,
    __REALTIME_TIMESTAMP: String(Date.now() * 1000),
    _HOSTNAME: "host",
    SYSLOG_IDENTIFIER: "sshd",
    _PID: String(1000 + n),
    _SYSTEMD_UNIT: "ssh.service",
    MESSAGE: `Failed password for root from ${ip} port ${40000 + n} ssh2`,
  })}\n`;
}

test("journal: failures → ban; the cursor is kept across a restart (nothing lost, nothing twice)", async () => {
  const e = new Env({ jail: 'backend = "journal"\njournalmatch = "_SYSTEMD_UNIT=ssh.service + _COMM=sshd"' });
  envs.push(e);
  const bin = join(e.dir, "fakebin");
  mkdirSync(bin);
  writeFileSync(join(bin, "journalctl"), FAKE);
  chmodSync(join(bin, "journalctl"), 0o755);
  const jfile = join(e.dir, "journal.jsonl");
  const args = join(e.dir, "journal-args");
  writeFileSync(jfile, entry("192.0.2.200")); // before the first start: not read (-n 0)
  e.env = { PATH: `${bin}:${process.env.PATH}`, JOURNAL_FILE: jfile, JOURNAL_ARGS: args };
  await e.start();
  await until(
    () => existsSync(args) && readFileSync(args, "utf8").includes("-f"),
    3000,
    "journalctl started",
  );
  await Bun.sleep(200);
  appendFileSync(jfile, entry("203.0.113.9") + entry("203.0.113.9") + entry("203.0.113.9"));
  await until(() => e.banLines().includes("ban 203.0.113.9 sshd"), 4000, "the ban");
  expect((await e.status()).failures_total).toBe(3);
  expect(await e.stop()).toBe(0);
  appendFileSync(jfile, entry("203.0.113.10") + entry("203.0.113.10") + entry("203.0.113.10"));
  await e.start();
  await until(
    () => e.banLines().includes("ban 203.0.113.10 sshd"),
    4000,
    "the ban of entries written while stopped",
  );
  const st = await e.status();
  expect(st.failures_total).toBe(3);
  expect(st.banned.sort()).toEqual(["203.0.113.10", "203.0.113.9"]);
  const calls = readFileSync(args, "utf8").trim().split("\n");
  expect(calls[0]).toBe("-f -o json --no-pager -q -n 0 _SYSTEMD_UNIT=ssh.service + _COMM=sshd");
  expect(calls[1]).toBe(
    "-f -o json --no-pager -q --after-cursor=s=abc;i=4 _SYSTEMD_UNIT=ssh.service + _COMM=sshd",
  );
  expect(e.banLines().filter((l) => l.includes("192.0.2.200"))).toEqual([]);
}, 30000);
