/**
 * End to end, in network namespaces this test creates (never the host's firewall): a Debian-like
 * Fail2ban configuration with the sshd jail enabled runs under `fail2ts run --fail2ban DIR` and
 * bans in nft; its conversion (`fail2ts convert`) runs and bans too. Uses /etc/fail2ban when
 * Debian's fail2ban is installed, else test/fixtures/fail2ban/debian-like.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { cpSync, existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { type Subprocess, spawn, spawnSync } from "bun";
import { binary, syslogDate, until } from "./e2e/daemon-helpers.ts";
import { Netns, requireFirewall } from "./helpers/netns.ts";
import { TempDirs } from "./helpers/tmp.ts";

const temps = new TempDirs();
afterAll(() => temps.removeAll());

const SOURCE = existsSync("/etc/fail2ban/jail.conf")
  ? "/etc/fail2ban"
  : join(import.meta.dir, "fixtures", "fail2ban", "debian-like");

const spaces: Netns[] = [];
afterAll(async () => {
  for (const ns of spaces) await ns.delete();
});

/** A copy of the configuration with only the paths a test needs changed (log, socket, database). */
function setup(): { dir: string; conf: string; log: string; sock: string; daemonLog: string } {
  const dir = temps.make("f2ts-f2b-ns-");
  const conf = join(dir, "fail2ban");
  cpSync(SOURCE, conf, { recursive: true });
  const log = join(dir, "auth.log");
  writeFileSync(log, "");
  writeFileSync(join(conf, "jail.local"), `[sshd]\nlogpath = ${log}\n`);
  const sock = join(dir, "fail2ts.sock");
  const daemonLog = join(dir, "fail2ts.log");
  writeFileSync(
    join(conf, "fail2ban.local"),
    `[Definition]\nsocket = ${sock}\ndbfile = ${join(dir, "fail2ban.sqlite3")}\nlogtarget = ${daemonLog}\n`,
  );
  return { dir, conf, log, sock, daemonLog };
}

function failures(ip: string, n: number): string {
  let s = "";
  for (let i = 0; i < n; i++) {
    s += `${syslogDate()} host sshd[${2000 + i}]: Failed password for root from ${ip} port ${50000 + i} ssh2\n`;
  }
  return s;
}

async function runAndBan(
  ns: Netns,
  args: string[],
  env: ReturnType<typeof setup>,
  ip: string,
): Promise<string> {
  const proc: Subprocess = spawn(["ip", "netns", "exec", ns.name, binary(), "run", ...args], {
    cwd: env.dir,
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
  });
  const { request } = await import("../src/server/client.ts");
  try {
    await until(
      async () => {
        if (proc.exitCode !== null) {
          throw new Error(
            `daemon exited ${proc.exitCode}: ${await new Response(proc.stderr as ReadableStream).text()}`,
          );
        }
        try {
          const st = (await request(env.sock, { cmd: "status" } as never, 2000)) as { jails: unknown[] };
          return st.jails.length > 0;
        } catch {
          return false;
        }
      },
      15000,
      "the daemon to start",
    );
    writeFileSync(env.log, failures(ip, 6), { flag: "a" });
    return await until(
      async () => {
        const r = await ns.run(["nft", "list", "ruleset"]);
        return r.stdout.includes(ip) ? r.stdout : "";
      },
      10000,
      `a ban of ${ip} in nft`,
    );
  } finally {
    proc.kill("SIGTERM");
    await Promise.race([proc.exited, Bun.sleep(10000)]);
    if (proc.exitCode === null) proc.kill("SIGKILL");
  }
}

describe("a Debian-like Fail2ban configuration in a network namespace", () => {
  if (!requireFirewall("fail2ban netns", ["nft", "iptables"], { test })) return;

  test("fail2ts run --fail2ban DIR bans in nft", async () => {
    const env = setup();
    const ns = await Netns.create();
    spaces.push(ns);
    const ruleset = await runAndBan(ns, ["--fail2ban", env.conf], env, "192.0.2.77");
    // Debian's banaction is iptables-multiport: fail2ts's own iptables action, here over nf_tables
    expect(ruleset).toContain("f2t-sshd");
    expect(readFileSync(env.daemonLog, "utf8")).toMatch(/Ban 192\.0\.2\.77 jail=sshd failures=5/);
  }, 60_000);

  test("its conversion runs and bans too", async () => {
    const env = setup();
    const out = join(env.dir, "fail2ts");
    const c = spawnSync([binary(), "convert", env.conf, out], {
      stdout: "pipe",
      stderr: "pipe",
      env: { ...process.env, NO_COLOR: "1" },
    });
    expect(c.exitCode).toBe(0);
    expect(c.stdout.toString()).toContain("valid");
    const ns = await Netns.create();
    spaces.push(ns);
    const ruleset = await runAndBan(ns, ["-c", join(out, "fail2ts.toml")], env, "192.0.2.78");
    expect(ruleset).toContain("f2t-sshd");
  }, 60_000);
});
