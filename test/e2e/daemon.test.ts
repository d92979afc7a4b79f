/**
 * The daemon end to end: the real binary, a temp dir, a command action that appends to a file.
 */

import { Database } from "bun:sqlite";
import { afterEach, beforeAll, describe, expect, test } from "bun:test";
import {
  appendFileSync,
  copyFileSync,
  renameSync,
  statSync,
  truncateSync,
  unlinkSync,
  writeFileSync,
} from "node:fs";
import { connect } from "node:net";
import { join } from "node:path";
import { binary, Env, type EnvOptions, failures, until } from "./daemon-helpers.ts";

const envs: Env[] = [];
function env(opts?: EnvOptions): Env {
  const e = new Env(opts);
  envs.push(e);
  return e;
}
afterEach(async () => {
  for (const e of envs.splice(0)) await e.cleanup();
});
beforeAll(() => {
  binary();
}, 120000);

/** Sends raw text on the socket, returns the raw reply line. */
function raw(sock: string, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const c = connect(sock);
    let buf = "";
    c.on("data", (d) => {
      buf += d.toString();
      if (buf.includes("\n")) {
        c.end();
        resolve(buf.slice(0, buf.indexOf("\n")));
      }
    });
    c.on("error", reject);
    c.write(text);
  });
}

describe("daemon", () => {
  test("failures in → ban out (logged, action run), then unban after bantime", async () => {
    const e = env({ bantime: "2s" });
    await e.start();
    e.append(failures("203.0.113.7", 2));
    await until(async () => (await e.status()).failures_total === 2, 3000, "2 failures");
    expect(e.banLines()).toEqual([]);
    e.append(failures("203.0.113.7", 1));
    await until(() => e.banLines().length === 1, 3000, "the ban");
    expect(e.banLines()).toEqual(["ban 203.0.113.7 sshd"]);
    const log = e.logText();
    expect(log).toMatch(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} INFO Found 203\.0\.113\.7 jail=sshd$/m);
    expect(log).toMatch(/^\S+ \S+ INFO Ban 203\.0\.113\.7 jail=sshd failures=3 bantime=2s$/m);
    const st = await e.status();
    expect(st).toEqual({
      name: "sshd",
      failures_total: 3,
      failures_now: 0,
      bans_total: 1,
      banned_now: 1,
      banned: ["203.0.113.7"],
    } as never);
    await until(() => e.banLines().length === 2, 4000, "the unban");
    expect(e.banLines()[1]).toBe("unban 203.0.113.7 sshd");
    expect(e.logText()).toMatch(/INFO Unban 203\.0\.113\.7 jail=sshd$/m);
    expect((await e.status()).banned_now).toBe(0);
  }, 20000);

  test("the control socket: ping, status contract, errors, permissions", async () => {
    const e = env();
    await e.start();
    expect(await raw(e.sock, '{"cmd":"ping"}\n')).toBe('{"ok":true,"result":"pong"}');
    const st = JSON.parse(await raw(e.sock, '{"cmd": "status"}\n'));
    expect(st).toEqual({
      ok: true,
      result: {
        jails: [
          { name: "sshd", failures_total: 0, failures_now: 0, bans_total: 0, banned_now: 0, banned: [] },
        ],
      },
    });
    expect(JSON.parse(await raw(e.sock, '{"cmd":"status","jail":"nope"}\n'))).toEqual({
      ok: false,
      error: 'no jail named "nope"',
    });
    expect(JSON.parse(await raw(e.sock, "garbage\n"))).toEqual({ ok: false, error: "not JSON" });
    expect(JSON.parse(await raw(e.sock, '{"cmd":"reboot"}\n'))).toEqual({
      ok: false,
      error: 'unknown command "reboot"',
    });
    expect(JSON.parse(await raw(e.sock, '{"cmd":"ban","jail":"sshd","ips":["1.2.3.999"]}\n')).ok).toBe(false);
    // two requests in one write, answered in order
    const two = await new Promise<string>((resolve) => {
      const c = connect(e.sock);
      let buf = "";
      c.on("data", (d) => {
        buf += d.toString();
        if (buf.split("\n").length > 2) {
          c.end();
          resolve(buf);
        }
      });
      c.write('{"cmd":"ping"}\n{"cmd":"status","jail":"sshd"}\n');
    });
    expect(two.split("\n")[0]).toBe('{"ok":true,"result":"pong"}');
    expect(JSON.parse(two.split("\n")[1]!).result.jails[0].name).toBe("sshd");
    expect(statSync(e.sock).mode & 0o777).toBe(0o600);
    expect(statSync(join(e.sock, "..")).mode & 0o777).toBe(0o700);
    expect(statSync(e.db).mode & 0o777).toBe(0o600);
  }, 20000);

  test("client subcommands: ping, status, ban, unban, reload, stop", async () => {
    const e = env();
    await e.start();
    expect(e.cli("ping", "-c", e.conf)).toEqual({ code: 0, out: "pong\n", err: "" });
    expect(e.cli("ping", "--socket", e.sock).out).toBe("pong\n");
    const b = e.cli("ban", "-c", e.conf, "sshd", "192.0.2.1", "2001:DB8::1");
    expect(b.code).toBe(0);
    expect(b.out).toBe("banned in sshd: 192.0.2.1 2001:db8::1\n");
    await until(() => e.banLines().length === 2, 3000, "2 bans");
    expect(e.cli("ban", "-c", e.conf, "sshd", "192.0.2.1").out).toBe("already banned: 192.0.2.1\n");
    const sj = JSON.parse(e.cli("status", "-c", e.conf, "sshd", "-o", "json").out);
    expect(sj.jails[0].banned.sort()).toEqual(["192.0.2.1", "2001:db8::1"]);
    expect(e.cli("status", "-c", e.conf).out).toContain("sshd");
    const bad = e.cli("ban", "-c", e.conf, "nojail", "192.0.2.9");
    expect(bad.code).toBe(1);
    expect(bad.err).toContain('no jail named "nojail"');
    expect(e.cli("unban", "-c", e.conf, "192.0.2.1").out).toBe("unbanned: 192.0.2.1\n");
    await until(() => e.banLines().includes("unban 192.0.2.1 sshd"), 3000, "unban");
    expect(e.cli("unban", "-c", e.conf, "--all").out).toBe("unbanned: 2001:db8::1\n");
    expect((await e.status()).banned_now).toBe(0);
    expect(e.cli("reload", "-c", e.conf).out).toBe("reloaded: no jail changed\n");
    e.writeConfig({ maxretry: 2 });
    expect(e.cli("reload", "-c", e.conf, "sshd").out).toBe("reloaded: sshd\n");
    e.append(failures("198.51.100.5", 2));
    await until(() => e.banLines().includes("ban 198.51.100.5 sshd"), 3000, "ban with maxretry 2");
    expect(e.cli("stop", "-c", e.conf).out).toBe("stopping\n");
    expect(await e.proc!.exited).toBe(0);
    const gone = e.cli("ping", "-c", e.conf);
    expect(gone.code).toBe(1);
    expect(gone.err).toContain("no daemon");
  }, 30000);

  test("SIGHUP reloads; an invalid config is refused and the running one stays", async () => {
    const e = env();
    await e.start();
    writeFileSync(e.conf, "[jails.sshd]\nmaxretry = 'x'\n");
    e.proc!.kill("SIGHUP");
    await until(() => /ERROR reload failed/.test(e.logText()), 3000, "the reload error");
    expect(e.logText()).toMatch(
      /reload failed, the running configuration stays: .*fail2ts.toml:2:1: jails.sshd.maxretry/,
    );
    const r = e.cli("reload", "-c", e.conf);
    expect(r.code).toBe(1);
    e.writeConfig({ maxretry: 1 });
    e.proc!.kill("SIGHUP");
    await until(() => /Reloaded: 1 jails changed/.test(e.logText()), 3000, "the reload");
    e.append(failures("198.51.100.77", 1));
    await until(() => e.banLines().includes("ban 198.51.100.77 sshd"), 3000, "ban with maxretry 1");
  }, 20000);

  test("stop keeps bans; start restores them in one batch, unbans those that expired meanwhile", async () => {
    const e = env();
    await e.start();
    e.cli("ban", "-c", e.conf, "sshd", "192.0.2.10", "192.0.2.11");
    await until(() => e.banLines().length === 2, 3000, "bans");
    expect(await e.stop()).toBe(0);
    // one ban expires while the daemon is down
    const db = new Database(e.db);
    db.query("UPDATE bans SET time = time - 10000 WHERE ip = '192.0.2.11'").run();
    db.close();
    await e.start();
    await until(() => e.banLines().length === 4, 3000, "restore + expiry unban");
    expect(e.banLines().slice(2).sort()).toEqual(["ban 192.0.2.10 sshd", "unban 192.0.2.11 sshd"]);
    expect((await e.status()).banned).toEqual(["192.0.2.10"]);
    expect(e.logText()).toContain("jail=sshd: 1 bans restored");
  }, 20000);

  test("restart resumes the log where it stopped: no line lost, none counted twice", async () => {
    const e = env();
    await e.start();
    e.append(failures("203.0.113.1", 3));
    await until(() => e.banLines().length === 1, 3000, "first ban");
    e.append(failures("203.0.113.2", 2));
    await until(async () => (await e.status()).failures_total === 5, 3000, "5 failures");
    expect(await e.stop()).toBe(0);
    e.append(failures("203.0.113.3", 3)); // written while stopped
    await e.start();
    await until(
      () => e.banLines().includes("ban 203.0.113.3 sshd"),
      3000,
      "ban of lines written while stopped",
    );
    const st = await e.status();
    expect(st.failures_total).toBe(3); // only the 3 new lines were read
    expect(st.banned.sort()).toEqual(["203.0.113.1", "203.0.113.3"]);
    expect(e.banLines().filter((l) => l.includes("203.0.113.2"))).toEqual([]);
  }, 20000);

  test("kill -9 during a ban storm loses no ban and duplicates none", async () => {
    const e = env();
    await e.start();
    const ips = Array.from({ length: 400 }, (_, i) => `10.9.${i >> 8}.${i & 255}`);
    let text = "";
    for (const ip of ips) text += failures(ip, 3);
    // written in pieces so that the kill lands mid-storm
    const lines = text.split("\n");
    const chunk = 60;
    let killed = false;
    for (let i = 0; i < lines.length; i += chunk) {
      e.append(lines.slice(i, i + chunk).join("\n") + (i + chunk < lines.length ? "\n" : ""));
      if (!killed && i > lines.length / 3) {
        await until(() => e.banLines().length > 20, 3000, "some bans");
        await e.kill9();
        killed = true;
      }
      await Bun.sleep(2);
    }
    appendFileSync(e.log, "\n");
    const before = new Set(e.banLines().map((l) => l.split(" ")[1]));
    expect(before.size).toBeGreaterThan(0);
    expect(before.size).toBeLessThan(400);
    await e.start();
    await until(async () => (await e.status()).banned_now === 400, 10000, "all 400 bans");
    const st = await e.status();
    expect(new Set(st.banned).size).toBe(400);
    expect(st.banned.sort()).toEqual([...ips].sort());
    const db = new Database(e.db, { readonly: true });
    const n = db.query("SELECT COUNT(*) AS n, COUNT(DISTINCT ip) AS d FROM bans").get() as {
      n: number;
      d: number;
    };
    const h = db.query("SELECT COUNT(*) AS n, COUNT(DISTINCT ip) AS d FROM history").get() as {
      n: number;
      d: number;
    };
    db.close();
    expect(n).toEqual({ n: 400, d: 400 });
    expect(h).toEqual({ n: 400, d: 400 }); // every address banned exactly once
    await until(
      () => new Set(e.banLines().map((l) => l.split(" ")[1])).size === 400,
      5000,
      "every ban applied",
    );
    // the action saw each address at most twice: the ban, and the restore after the kill
    const seen = new Map<string, number>();
    for (const l of e.banLines()) seen.set(l, (seen.get(l) ?? 0) + 1);
    expect(Math.max(...seen.values())).toBeLessThanOrEqual(2);
  }, 40000);

  test("rotation in each form is followed by the daemon", async () => {
    const e = env({ maxretry: 2 });
    await e.start();
    // rename-rotation: one failure before, one after
    e.append(failures("198.51.100.1", 1));
    await until(async () => (await e.status()).failures_total === 1, 3000, "failure 1");
    renameSync(e.log, `${e.log}.1`);
    writeFileSync(e.log, failures("198.51.100.1", 1));
    await until(() => e.banLines().includes("ban 198.51.100.1 sshd"), 3000, "ban across rename");
    // copytruncate
    e.append(failures("198.51.100.2", 1));
    await until(async () => (await e.status()).failures_total === 3, 3000, "failure 3");
    copyFileSync(e.log, `${e.log}.2`);
    truncateSync(e.log, 0);
    await Bun.sleep(50);
    e.append(failures("198.51.100.2", 1));
    await until(() => e.banLines().includes("ban 198.51.100.2 sshd"), 3000, "ban across copytruncate");
    // delete and recreate
    e.append(failures("198.51.100.3", 1));
    await until(async () => (await e.status()).failures_total === 5, 3000, "failure 5");
    unlinkSync(e.log);
    await Bun.sleep(50);
    writeFileSync(e.log, failures("198.51.100.3", 1));
    await until(() => e.banLines().includes("ban 198.51.100.3 sshd"), 3000, "ban across delete+recreate");
    expect((await e.status()).failures_total).toBe(6);
  }, 20000);

  test("polling backend", async () => {
    const e = env({ jail: 'backend = "polling"' });
    await e.start();
    e.append(failures("198.51.100.9", 3));
    await until(() => e.banLines().includes("ban 198.51.100.9 sshd"), 4000, "ban by polling");
  }, 20000);

  test("lines dated far off are counted as now, with one warning", async () => {
    const e = env();
    await e.start();
    const old = (ip: string) =>
      `Jan  1 00:00:00 host sshd[9]: Failed password for root from ${ip} port 1 ssh2\n`;
    e.append(old("192.0.2.50") + old("192.0.2.50") + old("192.0.2.50"));
    await until(() => e.banLines().includes("ban 192.0.2.50 sshd"), 3000, "ban of skewed lines");
    expect(e.logText().match(/WARNING .*counted as now/g)).toHaveLength(1);
  }, 20000);

  test("ignoreip and ignorecommand", async () => {
    const e = env({
      jail: `ignoreip = ["192.0.2.0/24", "file:friends.txt"]\nignorecommand = ["/bin/sh", "-c", "test \\"$1\\" = 198.51.100.66", "sh", "<ip>"]`,
    });
    writeFileSync(join(e.dir, "friends.txt"), "# friends\n203.0.113.0/28\n");
    await e.start();
    e.append(
      failures("192.0.2.1", 3) +
        failures("203.0.113.5", 3) +
        failures("198.51.100.66", 3) +
        failures("198.51.100.67", 3),
    );
    await until(() => e.banLines().length === 1, 3000, "one ban");
    await Bun.sleep(200);
    expect(e.banLines()).toEqual(["ban 198.51.100.67 sshd"]);
    expect(e.logText()).toContain("Ignore 198.51.100.66 jail=sshd by ignorecommand");
  }, 20000);

  test("bantime increment counts earlier bans from the database", async () => {
    const e = env({ bantime: "1s", extra: "[defaults.increment]\nenabled = true\nfactor = 1\n" });
    await e.start();
    e.append(failures("198.51.100.20", 3));
    await until(
      () => /Ban 198\.51\.100\.20 jail=sshd failures=3 bantime=1s/.test(e.logText()),
      3000,
      "first ban",
    );
    await until(() => e.banLines().includes("unban 198.51.100.20 sshd"), 4000, "unban");
    e.append(failures("198.51.100.20", 3));
    await until(
      () => /Ban 198\.51\.100\.20 jail=sshd failures=3 bantime=2s/.test(e.logText()),
      3000,
      "second ban, doubled",
    );
  }, 20000);
});
