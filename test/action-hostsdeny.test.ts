/** hosts.deny on a temporary file whose foreign lines must survive byte for byte. */
import { afterAll, beforeEach, describe, expect, test } from "bun:test";
import { chownSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createAction } from "../src/action/registry.ts";
import type { Action, JailInfo } from "../src/action/types.ts";
import { ev, memoryLog } from "./helpers/netns.ts";

const dir = mkdtempSync(join(tmpdir(), "f2t-hostsdeny-"));
const path = join(dir, "hosts.deny");

// comments, CRLF, UTF-8, a byte that is not UTF-8, a near-miss of our marker, another jail's line
const FOREIGN = Buffer.concat([
  Buffer.from("# /etc/hosts.deny: list of hosts that are _not_ allowed\n#\nALL: PARANOID\n"),
  Buffer.from("sshd: 192.0.2.200 # keep me\r\n"),
  Buffer.from("in.telnetd: .example.org # café\n"),
  Buffer.from([0x23, 0x20, 0xe9, 0xff, 0x0a]), // "# \xe9\xff\n"
  Buffer.from("ALL: 192.0.2.1 # fail2ts:sshd-old-typo \n"),
  Buffer.from("ALL: 192.0.2.2 # fail2ts: other\n"),
]);

function make(jail: Partial<JailInfo> = {}, options: Record<string, unknown> = {}): Action {
  return createAction(
    { name: "hostsdeny", type: "hostsdeny", options: { path, ...options } },
    { name: "sshd", ...jail },
    { log: memoryLog() },
  );
}

const read = () => readFileSync(path);
const text = () => readFileSync(path, "latin1");

describe("hostsdeny action", () => {
  beforeEach(() => {
    rmSync(path, { force: true });
    writeFileSync(path, FOREIGN, { mode: 0o640 });
    chownSync(path, 65534, 65534);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  test("ban appends marked lines; foreign bytes untouched; mode and owner kept", async () => {
    const a = make({ banprefix6: 64 });
    await a.ban([ev("203.0.113.7"), ev("2001:db8::1"), ev("198.51.100.0/24")]);
    const after = read();
    expect(after.subarray(0, FOREIGN.length).equals(FOREIGN)).toBe(true);
    expect(after.subarray(FOREIGN.length).toString()).toBe(
      "ALL: 203.0.113.7 # fail2ts:sshd\nALL: [2001:db8::]/64 # fail2ts:sshd\nALL: 198.51.100.0/255.255.255.0 # fail2ts:sshd\n",
    );
    const st = statSync(path);
    expect(st.mode & 0o777).toBe(0o640);
    expect([st.uid, st.gid]).toEqual([65534, 65534]);
  });

  test("idempotent ban; unban removes only our lines and restores the exact bytes", async () => {
    const a = make();
    await a.ban([ev("203.0.113.7"), ev("2001:db8::1")]);
    await a.ban([ev("203.0.113.7")]);
    expect(text().match(/203\.0\.113\.7/g)?.length).toBe(1);
    expect(text()).toContain("ALL: [2001:db8::1] # fail2ts:sshd\n");
    await a.unban([ev("203.0.113.7"), ev("192.0.2.2"), ev("192.0.2.1")]); // the last two are not ours
    expect(text()).not.toContain("203.0.113.7");
    await a.unban([ev("2001:db8::1")]);
    expect(read().equals(FOREIGN)).toBe(true);
  });

  test("flush/stop remove this jail's lines only", async () => {
    const other = make({ name: "other" });
    const a = make();
    await other.ban([ev("203.0.113.8", { jail: "other" })]);
    await a.ban([ev("203.0.113.9")]);
    await a.stop();
    expect(text()).toContain("ALL: 203.0.113.8 # fail2ts:other\n");
    expect(text()).not.toContain("203.0.113.9");
    await other.flush();
    expect(read().equals(FOREIGN)).toBe(true);
  });

  test("restore makes our lines exactly the batch", async () => {
    const a = make();
    await a.ban([ev("203.0.113.10"), ev("203.0.113.11")]);
    await a.restore!([ev("203.0.113.11"), ev("203.0.113.12")]);
    const ours = text()
      .split("\n")
      .filter((l) => l.endsWith("# fail2ts:sshd"));
    expect(ours).toEqual(["ALL: 203.0.113.11 # fail2ts:sshd", "ALL: 203.0.113.12 # fail2ts:sshd"]);
  });

  test("daemons option, and a file without a final newline", async () => {
    writeFileSync(path, "sshd: 10.0.0.1");
    const a = make({}, { daemons: "sshd, vsftpd" });
    await a.ban([ev("203.0.113.13")]);
    expect(text()).toBe("sshd: 10.0.0.1\nsshd, vsftpd: 203.0.113.13 # fail2ts:sshd\n");
    expect(() => make({}, { daemons: "ALL\nALL: ALL" })).toThrow(/daemons/);
  });

  test("a missing file is created", async () => {
    rmSync(path);
    await make().ban([ev("203.0.113.14")]);
    expect(text()).toBe("ALL: 203.0.113.14 # fail2ts:sshd\n");
  });

  test("a lock held by a live process blocks; a stale lock is broken", async () => {
    const holder = Bun.spawn(["sleep", "30"]);
    try {
      writeFileSync(`${path}.fail2ts.lock`, `${holder.pid}\n`);
      const err = await make({}, { lock_timeout: "200ms" })
        .ban([ev("203.0.113.15")])
        .catch((e) => e);
      expect((err as Error).message).toContain("is held by another process");
      expect(text()).not.toContain("203.0.113.15");
    } finally {
      holder.kill();
      await holder.exited;
    }
    // now the holder is dead: its lock is stale
    await make({}, { lock_timeout: "200ms" }).ban([ev("203.0.113.15")]);
    expect(text()).toContain("203.0.113.15");
    expect(existsSync(`${path}.fail2ts.lock`)).toBe(false);
  });

  test("concurrent writers (two jails) lose no update", async () => {
    const a = make();
    const b = make({ name: "web" });
    const work: Promise<void>[] = [];
    for (let i = 0; i < 40; i++) {
      work.push(a.ban([ev(`198.51.100.${i}`)]));
      work.push(b.ban([ev(`203.0.113.${i}`, { jail: "web" })]));
    }
    await Promise.all(work);
    const t = text();
    expect(t.match(/# fail2ts:sshd\n/g)?.length).toBe(40);
    expect(t.match(/# fail2ts:web\n/g)?.length).toBe(40);
    expect(read().subarray(0, FOREIGN.length).equals(FOREIGN)).toBe(true);
  });
});
