/**
 * Fleet-wide failure counting (global_maxretry). Each counted failure of a jail that has a
 * global_maxretry goes into a sorted set per address in Redis, `<prefix>:fail:<jail>:<ip>`,
 * scored by the failure's time (ms); one Lua script adds it, drops what is older than the jail's
 * findtime, refreshes the key's expiry and returns what is left. When that reaches
 * global_maxretry, this host bans the address (a local ban, so it is published and applied
 * everywhere) and deletes the window.
 *
 * Why a sorted set rather than INCR + EXPIRE buckets: it is the same sliding window as the local
 * jail's (findtime exactly, not rounded to buckets), and each member is unique (node, clock,
 * sequence) — an add retried after a lost reply is not counted twice, which INCR would do. Each
 * member carries a MAC with the fleet key, so someone who can write to Redis but has no key
 * cannot pile up failures to get an address banned fleet-wide. Cost: one member (~70 bytes) per
 * failure of an address within findtime, bounded per key (MAX_MEMBERS).
 *
 * Failures while Redis is down are not counted fleet-wide (local maxretry still bans): there is
 * no point in queueing them past their window.
 */
import type { Logger } from "../daemon/log.ts";
import { formatDuration } from "../util/duration.ts";
import { checkFailureMember, failureMember } from "./event.ts";
import { LinkDown, type RedisLink } from "./redis.ts";
import type { FleetJail } from "./types.ts";

const MAX_MEMBERS = 1000;
const MAX_INFLIGHT = 1000;

/** KEYS[1] window; ARGV: cutoff ms, window ms, score, member, cap. Returns the live members. */
const SCRIPT = `
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[1])
local n = redis.call('ZCARD', KEYS[1])
if n > tonumber(ARGV[5]) then redis.call('ZREMRANGEBYRANK', KEYS[1], 0, n - tonumber(ARGV[5]) - 1) end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return redis.call('ZRANGEBYSCORE', KEYS[1], ARGV[1], '+inf')
`;

export interface CounterOptions {
  link: RedisLink;
  key: Buffer;
  node: string;
  prefix: string;
  limits: Record<string, number>;
  log: Logger;
}

export class GlobalCounter {
  private seq = 0;
  private inflight = 0;
  private lastError = "";
  /** Bans made here because the fleet total reached global_maxretry. */
  bans = 0;
  /** Failures not counted fleet-wide (Redis down, too many in flight). */
  uncounted = 0;

  constructor(private readonly o: CounterOptions) {}

  /** Whether `jail` counts failures fleet-wide. */
  counts(jail: string): boolean {
    return Object.hasOwn(this.o.limits, jail);
  }

  /** Adds one failure (fire and forget: never waits on Redis). */
  failure(jail: string, ip: string, time: number, j: FleetJail): void {
    const limit = this.o.limits[jail];
    if (limit === undefined) return;
    if (!this.o.link.connected || this.inflight >= MAX_INFLIGHT) {
      this.uncounted++;
      return;
    }
    this.inflight++;
    void this.add(jail, ip, time, limit, j).finally(() => this.inflight--);
  }

  private async add(jail: string, ip: string, time: number, limit: number, j: FleetJail): Promise<void> {
    const { link, key, node, prefix, log } = this.o;
    const k = `${prefix}:fail:${jail}:${ip}`;
    const windowMs = Math.max(1000, Math.round(j.findtime * 1000));
    const nowMs = Date.now();
    const score = Math.min(Math.round(time * 1000), nowMs);
    const member = failureMember(key, jail, ip, node, score, ++this.seq);
    let members: unknown;
    try {
      members = await link.send("EVAL", [
        SCRIPT,
        "1",
        k,
        String(nowMs - windowMs),
        String(windowMs),
        String(score),
        member,
        String(MAX_MEMBERS),
      ]);
    } catch (e) {
      this.uncounted++;
      const msg = (e as Error).message;
      if (!(e instanceof LinkDown) && msg !== this.lastError) {
        log.error(`fleet: cannot count failures fleet-wide (said once): ${msg}`);
        this.lastError = msg;
      }
      return;
    }
    this.lastError = "";
    if (!Array.isArray(members)) return;
    let total = 0;
    const nodes = new Set<string>();
    for (const m of members) {
      const from = typeof m === "string" ? checkFailureMember(key, jail, ip, m) : null;
      if (from === null) continue;
      total++;
      nodes.add(from);
    }
    if (total < limit || !j.active || j.banOf(ip)) return;
    log.info(
      `fleet: ${ip} jail=${jail}: ${total} failures on ${nodes.size} hosts within ${formatDuration(j.findtime)} reached global_maxretry = ${limit}`,
    );
    this.bans++;
    j.banNow(ip, total);
    link.send("DEL", [k]).catch(() => {});
  }
}
