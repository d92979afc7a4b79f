/**
 * The daemon's state in SQLite (bun:sqlite, WAL): live bans, ban history (bantime increment),
 * log positions, journal cursors. A ban is committed here before any action sees it; writes of
 * one processed chunk go in one transaction (its bans and the position after it).
 */
import { Database } from "bun:sqlite";
import { chmodSync, existsSync, mkdirSync } from "node:fs";
import { dirname } from "node:path";
import { Fail2tsError } from "../util/errors.ts";

export interface StoredBan {
  jail: string;
  ip: string;
  /** Epoch seconds the ban started. */
  time: number;
  /** Seconds; -1 permanent. */
  bantime: number;
  /** Earlier bans of this address (increment). */
  count: number;
  failures: number;
  matches: string[];
}

/** Where a follower is in a file: inode, byte offset after the last complete line, first-line hash. */
export interface FilePosition {
  inode: number;
  offset: number;
  hash: string;
}

/** Writes of one transaction. */
export interface Commit {
  bans?: StoredBan[];
  /** Live bans to remove (unban); history is kept. */
  unbans?: Array<{ jail: string; ip: string }>;
  positions?: Array<{ jail: string; path: string; pos: FilePosition }>;
  cursors?: Array<{ jail: string; cursor: string }>;
}

const SCHEMA_VERSION = 1;

const SCHEMA = `
CREATE TABLE IF NOT EXISTS bans (
  jail TEXT NOT NULL, ip TEXT NOT NULL, time REAL NOT NULL, bantime REAL NOT NULL,
  count INTEGER NOT NULL DEFAULT 0, failures INTEGER NOT NULL DEFAULT 0, matches TEXT NOT NULL DEFAULT '[]',
  PRIMARY KEY (jail, ip)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS history (
  jail TEXT NOT NULL, ip TEXT NOT NULL, time REAL NOT NULL, bantime REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS history_ip ON history (ip, jail);
CREATE INDEX IF NOT EXISTS history_time ON history (time);
CREATE TABLE IF NOT EXISTS positions (
  jail TEXT NOT NULL, path TEXT NOT NULL, inode INTEGER NOT NULL, offset INTEGER NOT NULL, hash TEXT NOT NULL,
  PRIMARY KEY (jail, path)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS cursors (jail TEXT PRIMARY KEY, cursor TEXT NOT NULL) WITHOUT ROWID;
`;

interface BanRow {
  jail: string;
  ip: string;
  time: number;
  bantime: number;
  count: number;
  failures: number;
  matches: string;
}

/**
 * Opens (creating when needed) the database at `path`; ":memory:" keeps nothing. With `readonly`
 * (`--dry-run`) nothing is created or written: a missing or empty database is an io error.
 */
export class Store {
  /** The connection (fleet, issue 9: its own fleet_* tables live in the same database). */
  readonly db: Database;
  private readonly q: ReturnType<Store["prepare"]>;

  constructor(
    readonly path: string,
    opts: { readonly?: boolean } = {},
  ) {
    const ro = opts.readonly === true && path !== ":memory:";
    try {
      if (path !== ":memory:" && !ro) {
        const dir = dirname(path);
        if (!existsSync(dir)) mkdirSync(dir, { recursive: true, mode: 0o700 });
      }
      this.db = ro
        ? new Database(path, { readonly: true, strict: true })
        : new Database(path, { create: true, strict: true });
      if (path !== ":memory:" && !ro) chmodSync(path, 0o600);
      if (!ro)
        this.db.exec("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 5000;");
      else this.db.exec("PRAGMA busy_timeout = 5000;");
      const v = (this.db.query("PRAGMA user_version").get() as { user_version: number }).user_version;
      if (v > SCHEMA_VERSION) {
        throw new Fail2tsError(
          "io",
          `database schema ${v} is newer than this fail2ts knows (${SCHEMA_VERSION})`,
          path,
        );
      }
      if (v < SCHEMA_VERSION && ro) throw new Fail2tsError("io", "the database is empty", path);
      if (v < SCHEMA_VERSION)
        this.db.exec(`BEGIN; ${SCHEMA} PRAGMA user_version = ${SCHEMA_VERSION}; COMMIT;`);
    } catch (e) {
      if (e instanceof Fail2tsError) throw e;
      throw new Fail2tsError("io", `cannot open the database: ${(e as Error).message}`, path);
    }
    this.q = this.prepare();
  }

  private prepare() {
    const db = this.db;
    return {
      putBan: db.query(
        "INSERT OR REPLACE INTO bans (jail, ip, time, bantime, count, failures, matches) VALUES ($jail, $ip, $time, $bantime, $count, $failures, $matches)",
      ),
      addHistory: db.query(
        "INSERT INTO history (jail, ip, time, bantime) VALUES ($jail, $ip, $time, $bantime)",
      ),
      delBan: db.query("DELETE FROM bans WHERE jail = $jail AND ip = $ip"),
      bans: db.query("SELECT jail, ip, time, bantime, count, failures, matches FROM bans"),
      countJail: db.query("SELECT COUNT(*) AS n FROM history WHERE ip = $ip AND jail = $jail"),
      countAll: db.query("SELECT COUNT(*) AS n FROM history WHERE ip = $ip"),
      putPos: db.query(
        "INSERT OR REPLACE INTO positions (jail, path, inode, offset, hash) VALUES ($jail, $path, $inode, $offset, $hash)",
      ),
      getPos: db.query("SELECT inode, offset, hash FROM positions WHERE jail = $jail AND path = $path"),
      putCursor: db.query("INSERT OR REPLACE INTO cursors (jail, cursor) VALUES ($jail, $cursor)"),
      getCursor: db.query("SELECT cursor FROM cursors WHERE jail = $jail"),
    };
  }

  /** Runs the writes in one transaction. A ban also goes to the history (for increment counts). */
  commit(c: Commit): void {
    const q = this.q;
    this.db.transaction(() => {
      if (c.bans) {
        for (const b of c.bans) {
          q.putBan.run({
            jail: b.jail,
            ip: b.ip,
            time: b.time,
            bantime: b.bantime,
            count: b.count,
            failures: b.failures,
            matches: JSON.stringify(b.matches.slice(-20)),
          });
          q.addHistory.run({ jail: b.jail, ip: b.ip, time: b.time, bantime: b.bantime });
        }
      }
      if (c.unbans) for (const u of c.unbans) q.delBan.run(u);
      if (c.positions) {
        for (const p of c.positions) q.putPos.run({ jail: p.jail, path: p.path, ...p.pos });
      }
      if (c.cursors) for (const x of c.cursors) q.putCursor.run(x);
    })();
  }

  /** Every stored ban (live or expired: the caller decides by time). */
  bans(): StoredBan[] {
    return (this.q.bans.all() as BanRow[]).map((r) => ({ ...r, matches: parseMatches(r.matches) }));
  }

  /** Earlier bans of `ip`, in `jail` or in every jail. */
  banCount(ip: string, jail: string, overall: boolean): number {
    const r = (overall ? this.q.countAll.get({ ip }) : this.q.countJail.get({ ip, jail })) as { n: number };
    return r.n;
  }

  position(jail: string, path: string): FilePosition | null {
    return (this.q.getPos.get({ jail, path }) as FilePosition | null) ?? null;
  }

  cursor(jail: string): string | null {
    return (this.q.getCursor.get({ jail }) as { cursor: string } | null)?.cursor ?? null;
  }

  /**
   * Removes the live bans of `jails` (every jail when undefined) — `fail2ts flush`; the history
   * stays (bantime increment still counts them). Returns how many were removed.
   */
  clearBans(jails?: readonly string[]): number {
    if (jails === undefined) return this.db.query("DELETE FROM bans").run().changes;
    return this.db
      .query("DELETE FROM bans WHERE jail IN (SELECT value FROM json_each($l))")
      .run({ l: JSON.stringify(jails) }).changes;
  }

  /** Drops history older than `age` seconds (live bans are kept whatever their age). */
  purge(now: number, age: number): number {
    return this.db.query("DELETE FROM history WHERE time < $t").run({ t: now - age }).changes;
  }

  /** Forgets positions and cursors of jails that no longer exist. */
  forgetJails(keep: string[]): void {
    const list = JSON.stringify(keep);
    this.db
      .query("DELETE FROM positions WHERE jail NOT IN (SELECT value FROM json_each($l))")
      .run({ l: list });
    this.db.query("DELETE FROM cursors WHERE jail NOT IN (SELECT value FROM json_each($l))").run({ l: list });
  }

  close(): void {
    try {
      this.db.exec("PRAGMA wal_checkpoint(TRUNCATE)");
    } catch {
      // another process may hold the db; the WAL is replayed on the next open
    }
    this.db.close();
  }
}

function parseMatches(s: string): string[] {
  try {
    const v = JSON.parse(s);
    return Array.isArray(v) ? v.map(String) : [];
  } catch {
    return [];
  }
}
