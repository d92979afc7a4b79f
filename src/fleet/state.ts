/**
 * What the fleet keeps in the daemon's database (its own tables, created here, beside the
 * store's): the outgoing queue, the id of the last stream entry applied, the last event clock
 * seen from each node (replay guard), and this node's own event clock.
 *
 * The queue is bounded: past `max` events the oldest are dropped (and counted) — a host cut off
 * from Redis for days must not fill its disk, and old bans have expired by then anyway.
 */
import type { Database } from "bun:sqlite";

const SCHEMA = `
CREATE TABLE IF NOT EXISTS fleet_outbox (seq INTEGER PRIMARY KEY AUTOINCREMENT, fields TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS fleet_state (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS fleet_origins (node TEXT PRIMARY KEY, ts INTEGER NOT NULL) WITHOUT ROWID;
`;

export interface Queued {
  seq: number;
  fields: string[];
}

export class FleetState {
  private readonly q;
  private size_: number;
  private lastTs: number;
  private readonly origins = new Map<string, number>();

  constructor(
    private readonly db: Database,
    private readonly max: number,
  ) {
    db.exec(SCHEMA);
    this.q = {
      put: db.query("INSERT INTO fleet_outbox (fields) VALUES ($fields)"),
      peek: db.query("SELECT seq, fields FROM fleet_outbox ORDER BY seq LIMIT $n"),
      ack: db.query("DELETE FROM fleet_outbox WHERE seq <= $seq"),
      dropOldest: db.query(
        "DELETE FROM fleet_outbox WHERE seq IN (SELECT seq FROM fleet_outbox ORDER BY seq LIMIT $n)",
      ),
      count: db.query("SELECT COUNT(*) AS n FROM fleet_outbox"),
      get: db.query("SELECT value FROM fleet_state WHERE key = $key"),
      set: db.query("INSERT OR REPLACE INTO fleet_state (key, value) VALUES ($key, $value)"),
      origins: db.query("SELECT node, ts FROM fleet_origins"),
      setOrigin: db.query("INSERT OR REPLACE INTO fleet_origins (node, ts) VALUES ($node, $ts)"),
    };
    this.size_ = (this.q.count.get() as { n: number }).n;
    this.lastTs = Number(this.get("last_ts") ?? 0);
    for (const r of this.q.origins.all() as Array<{ node: string; ts: number }>)
      this.origins.set(r.node, r.ts);
  }

  private get(key: string): string | null {
    return (this.q.get.get({ key }) as { value: string } | null)?.value ?? null;
  }

  /** Events waiting to be published. */
  get queued(): number {
    return this.size_;
  }

  /**
   * Queues events built by `make(ts)` with this node's next clock values (strictly increasing
   * even if the wall clock steps back), in one transaction. Returns how many old events were
   * dropped to stay within the bound.
   */
  enqueue(count: number, nowMs: number, make: (ts: number, i: number) => string[]): number {
    let dropped = 0;
    this.db.transaction(() => {
      for (let i = 0; i < count; i++) {
        this.lastTs = Math.max(Math.floor(nowMs), this.lastTs + 1);
        this.q.put.run({ fields: JSON.stringify(make(this.lastTs, i)) });
      }
      this.q.set.run({ key: "last_ts", value: String(this.lastTs) });
      this.size_ += count;
      if (this.size_ > this.max) {
        dropped = this.size_ - this.max;
        this.q.dropOldest.run({ n: dropped });
        this.size_ = this.max;
      }
    })();
    return dropped;
  }

  /** The oldest `n` queued events. */
  peek(n: number): Queued[] {
    return (this.q.peek.all({ n }) as Array<{ seq: number; fields: string }>).map((r) => ({
      seq: r.seq,
      fields: JSON.parse(r.fields) as string[],
    }));
  }

  /** Forgets queued events up to `seq` (published). */
  ack(seq: number, n: number): void {
    this.q.ack.run({ seq });
    this.size_ = Math.max(0, this.size_ - n);
  }

  /** The id of the last stream entry this host has applied (null: none yet). */
  lastId(): string | null {
    return this.get("last_id");
  }

  /** The last event clock seen from `node`. */
  originTs(node: string): number {
    return this.origins.get(node) ?? 0;
  }

  /** Records progress through the stream, in one transaction. */
  saveRead(lastId: string, origins: Map<string, number>): void {
    this.db.transaction(() => {
      this.q.set.run({ key: "last_id", value: lastId });
      for (const [node, ts] of origins) {
        this.q.setOrigin.run({ node, ts });
        this.origins.set(node, ts);
      }
    })();
  }
}
