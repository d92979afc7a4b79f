/**
 * Reads the stream from the last entry this host applied (kept in its database, so a host that
 * was down catches up on restart) and applies what other nodes published:
 *
 * - unsigned, badly signed or malformed entries are dropped and counted;
 * - the host's own events, copies of events already seen from a node (its clock did not move
 *   forward: a replay or a re-sent batch), expired bans, jails not accepted or not running here,
 *   and addresses already banned are skipped — applying is idempotent;
 * - a ban is never applied to an address the jail ignores here (ignoreip, ignoreself,
 *   ignorecommand): a fleet must not lock an admin out everywhere;
 * - an unban lifts a ban only if that ban started before the unban was published.
 *
 * On each (re)connect the stream is checked against the saved position: a stream that was
 * reset (Redis lost its data) is read from the start; a position trimmed out of the stream
 * (down for more than `maxlen` events) is reported: events may have been missed.
 */
import type { Logger } from "../daemon/log.ts";
import { decodeEvent, type FleetEvent } from "./event.ts";
import { LinkDown, type RedisLink } from "./redis.ts";
import type { FleetState } from "./state.ts";
import type { FleetHost } from "./types.ts";

const COUNT = 500;
const REJECT_WARN_EVERY_MS = 60000;

export interface ConsumerOptions {
  link: RedisLink;
  state: FleetState;
  host: FleetHost;
  log: Logger;
  stream: string;
  key: Buffer;
  node: string;
  accept: string[] | null;
  /** Epoch seconds. */
  now: () => number;
  /** XREAD BLOCK, ms (default 5000). */
  blockMs?: number;
}

/** Compares stream ids ("ms-seq"). */
export function compareIds(a: string, b: string): number {
  const [am = 0, as = 0] = a.split("-").map(Number);
  const [bm = 0, bs = 0] = b.split("-").map(Number);
  return am !== bm ? am - bm : as - bs;
}

type Entry = [string, string[] | Record<string, string>];

/** The entries of one stream in an XREAD reply (RESP3 map or RESP2 array). */
export function entriesOf(reply: unknown, stream: string): Entry[] {
  if (reply === null || reply === undefined) return [];
  if (Array.isArray(reply)) {
    for (const s of reply) if (Array.isArray(s) && s[0] === stream) return (s[1] ?? []) as Entry[];
    return [];
  }
  if (typeof reply === "object") return ((reply as Record<string, unknown>)[stream] ?? []) as Entry[];
  return [];
}

/** XINFO STREAM as a plain object (RESP3 map or RESP2 flat list). */
function infoOf(reply: unknown): Record<string, unknown> {
  if (Array.isArray(reply)) {
    const o: Record<string, unknown> = {};
    for (let i = 0; i + 1 < reply.length; i += 2) o[String(reply[i])] = reply[i + 1];
    return o;
  }
  return (reply ?? {}) as Record<string, unknown>;
}

export class Consumer {
  private closed = false;
  private checked = false;
  private lastId: string;
  private lastWarn = 0;
  private lastError = "";
  private loop: Promise<void> | null = null;
  private readonly accept: Set<string> | null;
  applied = 0;
  rejected = 0;
  skipped = 0;
  ignored = 0;
  lagMs: number | null = null;

  constructor(private readonly o: ConsumerOptions) {
    this.lastId = o.state.lastId() ?? "0";
    this.accept = o.accept ? new Set(o.accept) : null;
  }

  get lastEventId(): string | null {
    return this.lastId === "0" ? null : this.lastId;
  }

  start(): void {
    this.loop ??= this.run();
  }

  /** The link came (back) up: check the position against the stream before reading. */
  reconnected(): void {
    this.checked = false;
  }

  private async run(): Promise<void> {
    const { link, stream } = this.o;
    const block = this.o.blockMs ?? 5000;
    while (!this.closed) {
      await link.waitUp();
      if (this.closed) break;
      try {
        if (!this.checked) {
          await this.check();
          this.checked = true;
        }
        const reply = await link.block(
          "XREAD",
          ["COUNT", String(COUNT), "BLOCK", String(block), "STREAMS", stream, this.lastId],
          block + 3000,
        );
        const entries = entriesOf(reply, stream);
        if (entries.length === 0) {
          this.lagMs = this.lagMs === null ? null : 0;
          continue;
        }
        await this.apply(entries);
        this.lastError = "";
      } catch (e) {
        if (this.closed) break;
        if (e instanceof LinkDown) continue; // waitUp() holds the loop until it is back
        // Redis answered an error (the key is not a stream, ...): said once, retried every second
        const msg = (e as Error).message;
        if (msg !== this.lastError) this.o.log.error(`fleet: reading ${stream}: ${msg} (retrying)`);
        this.lastError = msg;
        await Bun.sleep(1000);
      }
    }
  }

  private async check(): Promise<void> {
    const { link, stream, log } = this.o;
    let info: Record<string, unknown>;
    try {
      info = infoOf(await link.send("XINFO", ["STREAM", stream]));
    } catch (e) {
      if (e instanceof LinkDown) throw e;
      if (/no such key/i.test((e as Error).message)) {
        if (this.lastId !== "0") {
          log.warn(
            `fleet: the stream ${stream} is gone (Redis lost its data?): reading it from the start when it reappears`,
          );
          this.lastId = "0";
        }
        return;
      }
      throw e;
    }
    const lastGen = String(info["last-generated-id"] ?? "0-0");
    if (this.lastId !== "0" && compareIds(this.lastId, lastGen) > 0) {
      log.warn(
        `fleet: the stream ${stream} ends at ${lastGen}, before this host's position ${this.lastId} (Redis lost its data?): reading it from the start`,
      );
      this.lastId = "0";
      return;
    }
    // our last entry was trimmed away: what came between it and the first one left is lost
    const first = info["first-entry"];
    const firstId = Array.isArray(first) && typeof first[0] === "string" ? first[0] : null;
    if (this.lastId !== "0" && firstId && compareIds(firstId, this.lastId) > 0) {
      log.warn(
        `fleet: the stream ${stream} was trimmed past this host's position ${this.lastId} (down too long? raise [fleet] maxlen): bans published meanwhile may be missed`,
      );
    }
  }

  private async apply(entries: Entry[]): Promise<void> {
    const { state, key, stream, node } = this.o;
    const seen = new Map<string, number>();
    let last = this.lastId;
    for (const [id, fields] of entries) {
      last = id;
      const d = decodeEvent(fields, stream, key);
      if (!d.ok) {
        this.reject(id, d.reason);
        continue;
      }
      const e = d.event;
      if (e.node === node) continue; // our own
      const prev = seen.get(e.node) ?? state.originTs(e.node);
      if (e.ts <= prev) {
        this.skipped++;
        this.o.log.debug(`fleet: ${id}: event ${e.ts} of ${e.node} already seen (replayed or re-sent)`);
        continue;
      }
      seen.set(e.node, e.ts);
      await this.applyOne(e, id);
      if (this.closed) return;
    }
    state.saveRead(last, seen);
    this.lastId = last;
    this.lagMs = Math.max(0, Date.now() - Number(last.split("-")[0]));
  }

  private async applyOne(e: FleetEvent, id: string): Promise<void> {
    const { host, log, now } = this.o;
    if (this.accept && !this.accept.has(e.jail)) {
      this.skipped++;
      return;
    }
    const j = host.jail(e.jail);
    if (!j || !j.active) {
      this.skipped++;
      log.debug(`fleet: ${id}: no running jail ${e.jail} here`);
      return;
    }
    if (e.type === "unban") {
      const b = j.banOf(e.ip);
      if (b && b.time * 1000 <= e.ts) {
        j.applyUnban(e.ip, e.node);
        this.applied++;
      } else this.skipped++;
      return;
    }
    if (e.expiry !== -1 && e.expiry <= now()) {
      this.skipped++;
      log.debug(`fleet: ${id}: ban of ${e.ip} from ${e.node} expired already`);
      return;
    }
    if (j.banOf(e.ip)) {
      this.skipped++;
      return;
    }
    const ig = j.ignores(e.ip);
    if (ig === true || (ig !== false && (await ig))) {
      this.ignored++;
      log.info(
        `fleet: not banning ${e.ip} jail=${e.jail} from ${e.node}: ignored here (ignoreip/ignoreself/ignorecommand)`,
      );
      return;
    }
    if (this.closed || !j.active || j.banOf(e.ip)) {
      this.skipped++;
      return;
    }
    j.applyBan({ ip: e.ip, time: e.time, bantime: e.bantime, failures: e.failures }, e.node);
    this.applied++;
  }

  private reject(id: string, reason: string): void {
    this.rejected++;
    const t = Date.now();
    const msg = `fleet: rejected stream entry ${id}: ${reason}`;
    if (t - this.lastWarn > REJECT_WARN_EVERY_MS) {
      this.lastWarn = t;
      this.o.log.warn(
        `${msg} (a host with another key_file, or a forgery; ${this.rejected} rejected so far, next reports at debug level for a minute)`,
      );
    } else this.o.log.debug(msg);
  }

  /** Stops after the current read (the link's close ends a blocked one). */
  close(): void {
    this.closed = true;
  }

  /** Resolves when the read loop has ended. */
  finished(): Promise<void> {
    return this.loop ?? Promise.resolve();
  }
}
