import { afterEach, describe, expect, test } from "bun:test";
import {
  appendFileSync,
  chmodSync,
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  renameSync,
  rmSync,
  truncateSync,
  unlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FileFollower, type FilePosition } from "../src/source/file.ts";
import { JournalFollower, type JournalLine, journalText } from "../src/source/journal.ts";

const dirs: string[] = [];
const followers: Array<{ stop(): void }> = [];
function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), "f2ts-src-"));
  dirs.push(d);
  return d;
}
afterEach(() => {
  for (const f of followers.splice(0)) f.stop();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

async function until(fn: () => boolean, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!fn()) {
    if (Date.now() > end) throw new Error("timed out");
    await Bun.sleep(5);
  }
}

function follow(path: string, mode: "inotify" | "polling", position: FilePosition | null = null) {
  const got: string[] = [];
  const f = new FileFollower({
    path,
    mode,
    position,
    onLines: (l) => got.push(...l),
    pollMs: 50,
    drainMs: 500,
  });
  followers.push(f);
  f.start();
  return { f, got };
}

for (const mode of ["inotify", "polling"] as const) {
  describe(`file follower (${mode})`, () => {
    test("an existing file is read from its end; appended lines come whole", async () => {
      const p = join(tmp(), "a.log");
      writeFileSync(p, "old 1\nold 2\n");
      const { got } = follow(p, mode);
      appendFileSync(p, "new 1\nnew ");
      await until(() => got.length >= 1);
      await Bun.sleep(mode === "polling" ? 120 : 30);
      expect(got).toEqual(["new 1"]); // the partial line waits for its newline
      appendFileSync(p, "2\r\nnew 3\n");
      await until(() => got.length >= 3);
      expect(got).toEqual(["new 1", "new 2", "new 3"]);
    });

    test("rename-rotation: the rest of the old file, then the new file from its start", async () => {
      const d = tmp();
      const p = join(d, "a.log");
      writeFileSync(p, "");
      const { got } = follow(p, mode);
      appendFileSync(p, "one\n");
      await until(() => got.length === 1);
      appendFileSync(p, "two\n");
      renameSync(p, `${p}.1`);
      appendFileSync(`${p}.1`, "late write to the old file\n");
      writeFileSync(p, "three\n");
      await until(() => got.length === 4);
      expect(got.sort()).toEqual(["late write to the old file", "one", "three", "two"]);
      appendFileSync(p, "four\n");
      await until(() => got.length === 5);
      expect(got.at(-1)).toBe("four");
    });

    test("copytruncate: the file is read again from its start", async () => {
      const p = join(tmp(), "a.log");
      writeFileSync(p, "");
      const { got } = follow(p, mode);
      appendFileSync(p, "one\ntwo\n");
      await until(() => got.length === 2);
      copyFileSync(p, `${p}.1`);
      truncateSync(p, 0);
      await Bun.sleep(mode === "polling" ? 120 : 20);
      appendFileSync(p, "three\n");
      await until(() => got.length === 3);
      expect(got).toEqual(["one", "two", "three"]);
    });

    test("delete and recreate; a file that appears later is read from its start", async () => {
      const d = tmp();
      const p = join(d, "later.log");
      const { f, got } = follow(p, mode);
      expect(f.open).toBe(false);
      writeFileSync(p, "first\n");
      await until(() => got.length === 1);
      unlinkSync(p);
      await Bun.sleep(mode === "polling" ? 120 : 20);
      writeFileSync(p, "second\n");
      await until(() => got.length === 2);
      expect(got).toEqual(["first", "second"]);
    });

    test("a missing directory that appears later", async () => {
      const d = join(tmp(), "not", "yet");
      const p = join(d, "x.log");
      const got: string[] = [];
      const f = new FileFollower({
        path: p,
        mode,
        position: null,
        onLines: (l) => got.push(...l),
        pollMs: 50,
        safetyMs: 100,
      });
      followers.push(f);
      f.start();
      mkdirSync(d, { recursive: true });
      writeFileSync(p, "hello\n");
      await until(() => got.length === 1);
      expect(got).toEqual(["hello"]);
    });
  });
}

describe("file follower positions", () => {
  test("resumes at the stored position; no line lost, none twice", async () => {
    const p = join(tmp(), "a.log");
    writeFileSync(p, "l1\n");
    const a = follow(p, "inotify");
    appendFileSync(p, "l2\nl3\n");
    await until(() => a.got.length === 2);
    const pos = a.f.position()!;
    a.f.stop();
    appendFileSync(p, "l4 while stopped\n");
    const b = follow(p, "inotify", pos);
    await until(() => b.got.length === 1);
    appendFileSync(p, "l5\n");
    await until(() => b.got.length === 2);
    expect([...a.got, ...b.got]).toEqual(["l2", "l3", "l4 while stopped", "l5"]);
  });

  test("a replaced file (first line differs) is read from its start", async () => {
    const p = join(tmp(), "a.log");
    writeFileSync(p, "first line\nsecond\n");
    const a = follow(p, "inotify");
    appendFileSync(p, "third\n");
    await until(() => a.got.length === 1);
    const pos = a.f.position()!;
    a.f.stop();
    writeFileSync(`${p}.new`, "another file\nwith more lines than before, so longer\n");
    renameSync(`${p}.new`, p);
    const b = follow(p, "inotify", pos);
    await until(() => b.got.length === 2);
    expect(b.got).toEqual(["another file", "with more lines than before, so longer"]);
  });

  test("a file that shrank below the stored offset is read from its start", async () => {
    const p = join(tmp(), "a.log");
    writeFileSync(p, "x\n");
    const pos: FilePosition = { inode: 1, offset: 1000, hash: "nothing" };
    const b = follow(p, "inotify", pos);
    await until(() => b.got.length === 1);
    expect(b.got).toEqual(["x"]);
  });

  test("a large burst arrives complete and in order", async () => {
    const p = join(tmp(), "a.log");
    writeFileSync(p, "");
    const a = follow(p, "inotify");
    const lines = Array.from({ length: 50_000 }, (_, i) => `line ${i} ${"x".repeat(i % 50)}`);
    appendFileSync(p, lines.join("\n") + "\n");
    await until(() => a.got.length === lines.length, 5000);
    expect(a.got).toEqual(lines);
  });

  test("a backlog bigger than one read's budget comes whole, in order, over several ticks", async () => {
    const p = join(tmp(), "a.log");
    const lines = Array.from({ length: 120_000 }, (_, i) => `backlog line ${i} ${"y".repeat(80)}`);
    writeFileSync(p, `${lines.join("\n")}\n`); // ~12 MB
    const got: string[] = [];
    let calls = 0;
    const f = new FileFollower({
      path: p,
      mode: "inotify",
      position: { inode: -1, offset: 0, hash: "" },
      onLines: (l) => {
        calls++;
        got.push(...l);
      },
    });
    followers.push(f);
    let ticks = 0;
    const tick = setInterval(() => ticks++, 0);
    f.start();
    await until(() => got.length === lines.length, 10000);
    clearInterval(tick);
    expect(got).toEqual(lines);
    expect(calls).toBeGreaterThan(40);
    expect(ticks).toBeGreaterThan(0);
  });

  test("latin-1 log encoding", async () => {
    const p = join(tmp(), "a.log");
    writeFileSync(p, "");
    const got: string[] = [];
    const f = new FileFollower({
      path: p,
      mode: "inotify",
      position: null,
      encoding: "latin1",
      onLines: (l) => got.push(...l),
    });
    followers.push(f);
    f.start();
    appendFileSync(p, Buffer.from([0x63, 0x61, 0x66, 0xe9, 0x0a]));
    await until(() => got.length === 1);
    expect(got).toEqual(["café"]);
  });
});

describe("journal follower", () => {
  test("entries become 'host ident[pid]: message' lines with the journal's time; the cursor is kept", async () => {
    const d = tmp();
    const fake = join(d, "journalctl");
    const argsFile = join(d, "args");
    const entries = [
      {
        __CURSOR: "c1",
        __REALTIME_TIMESTAMP: "1700000000123456",
        _HOSTNAME: "h",
        SYSLOG_IDENTIFIER: "sshd",
        _PID: "42",
        MESSAGE: "Invalid user x from 192.0.2.1 port 22",
      },
      {
        __CURSOR: "c2",
        __REALTIME_TIMESTAMP: "1700000001000000",
        _HOSTNAME: "h",
        _COMM: "sshd",
        MESSAGE: [104, 105],
      },
    ];
    writeFileSync(
      fake,
      `#!/bin/sh\nprintf '%s\\n' "$@" > ${argsFile}\ncat <<'EOF'\n${entries.map((e) => JSON.stringify(e)).join("\n")}\nEOF\nsleep 30\n`,
    );
    chmodSync(fake, 0o755);
    const got: JournalLine[] = [];
    const j = new JournalFollower({
      matches: ["_SYSTEMD_UNIT=ssh.service", "+", "_COMM=sshd"],
      cursor: "c0",
      journalctl: fake,
      onLines: (l) => got.push(...l),
    });
    followers.push(j);
    j.start();
    await until(() => got.length === 2);
    expect(got[0]).toEqual({
      text: "h sshd[42]: Invalid user x from 192.0.2.1 port 22",
      time: 1700000000.123456,
    });
    expect(got[1]!.text).toBe("h sshd: hi");
    expect(j.cursor()).toBe("c2");
    const args = (await Bun.file(argsFile).text()).trim().split("\n");
    expect(args).toContain("--after-cursor=c0");
    expect(args.slice(-3)).toEqual(["_SYSTEMD_UNIT=ssh.service", "+", "_COMM=sshd"]);
  });

  test("journalText", () => {
    expect(
      journalText({ _HOSTNAME: "srv", SYSLOG_IDENTIFIER: "sshd", SYSLOG_PID: "7", MESSAGE: "msg\n" }),
    ).toBe("srv sshd[7]: msg");
  });
});
