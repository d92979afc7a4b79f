/**
 * The daemon in-process (no build): reload semantics, globbed log paths, recidive on the
 * daemon's own log, unban_on_stop. Actions are command actions appending to a file.
 */
import { afterEach, describe, expect, test } from "bun:test";
import {
  appendFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadConfig } from "../src/config/load.ts";
import { Daemon } from "../src/daemon/daemon.ts";
import { request } from "../src/server/client.ts";
import { failures, fileAction, until } from "./e2e/daemon-helpers.ts";

const dirs: string[] = [];
const daemons: Daemon[] = [];
afterEach(async () => {
  for (const d of daemons.splice(0)) await d.stop();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

class Setup {
  readonly dir = mkdtempSync(join(tmpdir(), "f2ts-daemon-"));
  readonly conf = join(this.dir, "fail2ts.toml");
  readonly bans = join(this.dir, "bans.txt");
  daemon: Daemon | null = null;

  constructor() {
    dirs.push(this.dir);
  }

  write(jails: string, server = ""): void {
    const act = (w: string) => fileAction(w, this.bans);
    writeFileSync(
      this.conf,
      `[defaults]\nmaxretry = 3\naction = ["file"]\n\n${jails}\n\n[actions.file]\ntype = "command"\nban = ${act("ban")}\nunban = ${act("unban")}\n\n[server]\nsocket = "s.sock"\ndatabase = "f.db"\nlogtarget = "f.log"\n${server}\n`,
    );
  }

  async start(): Promise<Daemon> {
    this.daemon = await Daemon.start(loadConfig(this.conf), { configPath: this.conf });
    daemons.push(this.daemon);
    return this.daemon;
  }

  async stop(): Promise<void> {
    await this.daemon?.stop();
    daemons.splice(daemons.indexOf(this.daemon!), 1);
    this.daemon = null;
  }

  lines(): string[] {
    return existsSync(this.bans) ? readFileSync(this.bans, "utf8").trim().split("\n").filter(Boolean) : [];
  }

  log(): string {
    return readFileSync(join(this.dir, "f.log"), "utf8");
  }

  status(jail?: string) {
    return this.daemon!.status(jail).jails;
  }
}

describe("daemon in-process", () => {
  test("reload: a new jail starts, a removed one is unbanned and stopped, a changed one keeps its bans", async () => {
    const s = new Setup();
    writeFileSync(join(s.dir, "a.log"), "");
    writeFileSync(join(s.dir, "b.log"), "");
    s.write('[jails.sshd]\nlogpath = "a.log"\n\n[jails.other]\nfilter = "sshd"\nlogpath = "b.log"');
    const d = await s.start();
    expect(s.status().map((j) => j.name)).toEqual(["sshd", "other"]);
    d.ban("sshd", ["192.0.2.1"]);
    d.ban("other", ["192.0.2.2"], true); // forced: 192.0.2.2 may be this host's (ignoreself)
    await until(() => s.lines().length === 2, 3000, "2 bans");
    s.write(
      '[jails.sshd]\nlogpath = "a.log"\nmaxretry = 2\n\n[jails.third]\nfilter = "sshd"\nlogpath = "b.log"',
    );
    const r = await d.reload();
    expect(r.jails.sort()).toEqual(["other", "sshd", "third"]);
    await until(() => s.lines().includes("unban 192.0.2.2 other"), 3000, "unban of the removed jail");
    expect(
      s
        .status()
        .map((j) => j.name)
        .sort(),
    ).toEqual(["sshd", "third"]);
    expect(s.status("sshd")[0]!.banned).toEqual(["192.0.2.1"]);
    // the changed jail kept its actions: its ban was not applied a second time
    expect(s.lines().filter((l) => l === "ban 192.0.2.1 sshd")).toHaveLength(1);
    appendFileSync(join(s.dir, "a.log"), failures("198.51.100.4", 2));
    await until(() => s.lines().includes("ban 198.51.100.4 sshd"), 3000, "ban with the new maxretry");
    appendFileSync(join(s.dir, "b.log"), failures("198.51.100.5", 3));
    await until(() => s.lines().includes("ban 198.51.100.5 third"), 3000, "ban in the new jail");
    // reload of one jail only
    s.write(
      '[jails.sshd]\nlogpath = "a.log"\nmaxretry = 1\n\n[jails.third]\nfilter = "sshd"\nlogpath = "b.log"\nmaxretry = 1',
    );
    expect((await d.reload("sshd")).jails).toEqual(["sshd"]);
    appendFileSync(join(s.dir, "b.log"), failures("198.51.100.6", 1));
    appendFileSync(join(s.dir, "a.log"), failures("198.51.100.7", 1));
    await until(() => s.lines().includes("ban 198.51.100.7 sshd"), 3000, "ban with maxretry 1");
    await Bun.sleep(100);
    expect(s.lines().some((l) => l.includes("198.51.100.6"))).toBe(false); // third still has maxretry 3
    await expect(d.reload("nosuch")).rejects.toThrow('no jail named "nosuch"');
  }, 20000);

  test("globbed log paths: files present at start, a new file later (read from its start), rotation not re-read", async () => {
    const s = new Setup();
    mkdirSync(join(s.dir, "logs"));
    writeFileSync(join(s.dir, "logs", "one.log"), failures("192.0.2.100", 3)); // old lines: from the end
    s.write('[jails.sshd]\nlogpath = "logs/*.log"');
    await s.start();
    appendFileSync(join(s.dir, "logs", "one.log"), failures("203.0.113.1", 3));
    await until(() => s.lines().includes("ban 203.0.113.1 sshd"), 3000, "ban from one.log");
    writeFileSync(join(s.dir, "logs", "two.log"), failures("203.0.113.2", 3));
    await until(() => s.lines().includes("ban 203.0.113.2 sshd"), 3000, "ban from a new file");
    renameSync(join(s.dir, "logs", "two.log"), join(s.dir, "logs", "two-old.log"));
    await Bun.sleep(200);
    expect(s.lines()).toEqual(["ban 203.0.113.1 sshd", "ban 203.0.113.2 sshd"]);
    expect(s.status("sshd")[0]!.failures_total).toBe(6);
  }, 20000);

  test("recidive: a jail on the daemon's own log bans repeat offenders", async () => {
    const s = new Setup();
    writeFileSync(join(s.dir, "a.log"), "");
    writeFileSync(join(s.dir, "f.log"), "");
    s.write(
      '[jails.sshd]\nlogpath = "a.log"\nbantime = "1s"\n\n[jails.recidive]\nlogpath = "f.log"\nmaxretry = 2\nbantime = "1w"',
    );
    await s.start();
    appendFileSync(join(s.dir, "a.log"), failures("198.51.100.66", 3));
    await until(() => s.lines().includes("unban 198.51.100.66 sshd"), 4000, "first ban and unban");
    appendFileSync(join(s.dir, "a.log"), failures("198.51.100.66", 3));
    await until(() => s.lines().includes("ban 198.51.100.66 recidive"), 4000, "recidive ban");
    expect(s.log()).toMatch(/INFO Ban 198\.51\.100\.66 jail=recidive failures=2 bantime=604800s/);
    expect(s.status("recidive")[0]!.failures_total).toBe(2); // its own Ban line is not counted
  }, 20000);

  test("unban_on_stop: the firewall is cleared at stop, the database keeps the bans, start restores them", async () => {
    const s = new Setup();
    writeFileSync(join(s.dir, "a.log"), "");
    s.write('[jails.sshd]\nlogpath = "a.log"', "unban_on_stop = true");
    const d = await s.start();
    d.ban("sshd", ["192.0.2.7"]);
    await until(() => s.lines().length === 1, 3000, "ban");
    await s.stop();
    expect(s.lines()).toEqual(["ban 192.0.2.7 sshd", "unban 192.0.2.7 sshd"]);
    await s.start();
    await until(() => s.lines().length === 3, 3000, "restore");
    expect(s.lines()[2]).toBe("ban 192.0.2.7 sshd");
  }, 20000);

  test("control requests through the socket; a second daemon on the same socket is refused", async () => {
    const s = new Setup();
    writeFileSync(join(s.dir, "a.log"), "");
    s.write('[jails.sshd]\nlogpath = "a.log"');
    await s.start();
    const sock = join(s.dir, "s.sock");
    expect(await request(sock, { cmd: "ping" })).toBe("pong");
    expect(
      await request(sock, { cmd: "ban", jail: "sshd", ips: ["::ffff:192.0.2.9", "2001:DB8:0::1"] }),
    ).toEqual({
      banned: ["192.0.2.9", "2001:db8::1"],
      already: [],
    });
    expect(await request(sock, { cmd: "unban", ips: ["192.0.2.9", "192.0.2.10"] })).toEqual({
      unbanned: ["192.0.2.9"],
      missing: ["192.0.2.10"],
    });
    await expect(Daemon.start(loadConfig(s.conf), { configPath: s.conf })).rejects.toThrow(
      "a fail2ts daemon already answers",
    );
  }, 20000);
});
