/**
 * A host's membership in a fleet: the Redis link, the publisher of its local bans and unbans
 * (through a bounded queue in its database), the consumer applying the others', and fleet-wide
 * failure counting. The daemon creates one when [fleet] is configured, hands `hook` to its jails
 * and a FleetHost to reach them.
 *
 * Nothing here blocks the daemon: a jail's ban only writes a row in the queue; Redis being down
 * or slow only delays what other hosts see.
 */

import type { Database } from "bun:sqlite";
import { readFileSync } from "node:fs";
import type { Logger } from "../daemon/log.ts";
import { Fail2tsError } from "../util/errors.ts";
import { connectUrl, type FleetConfig, readKey, redactUrl } from "./config.ts";
import { Consumer } from "./consumer.ts";
import { GlobalCounter } from "./counter.ts";
import { encodeEvent, type FleetEvent } from "./event.ts";
import { Publisher } from "./publisher.ts";
import { RedisLink } from "./redis.ts";
import { FleetState } from "./state.ts";
import type { BanNote, FleetHook, FleetHost, FleetStatus } from "./types.ts";

export interface FleetDeps {
  /** The daemon's database (the fleet adds its own tables). */
  db: Database;
  log: Logger;
  host: FleetHost;
  /** Epoch seconds. */
  now?: () => number;
  /** Tests: XREAD BLOCK ms, backoff, command deadline. */
  blockMs?: number;
  backoffMinMs?: number;
  backoffMaxMs?: number;
  commandTimeoutMs?: number;
}

/** The stream key of a prefix. */
export function streamKey(prefix: string): string {
  return `${prefix}:events`;
}

export class Fleet {
  readonly node: string;
  readonly stream: string;
  readonly hook: FleetHook;
  private readonly key: Buffer;
  private readonly link: RedisLink;
  private readonly state: FleetState;
  private readonly publisher: Publisher;
  private readonly consumer: Consumer;
  private readonly counter: GlobalCounter;
  private readonly share: Set<string> | null;
  private readonly now: () => number;
  private dropped = 0;
  private dropWarned = false;
  private stopped = false;

  /** Reads the key (and password, CA) now: a missing or unsafe key file stops the daemon from starting. */
  constructor(
    readonly config: FleetConfig,
    private readonly deps: FleetDeps,
  ) {
    this.key = readKey(config.key_file);
    const url = connectUrl(config);
    let ca: string | undefined;
    if (config.ca_file) {
      try {
        ca = readFileSync(config.ca_file, "utf8");
      } catch (e) {
        throw new Fail2tsError("config", `ca_file: cannot read: ${(e as Error).message}`, config.ca_file);
      }
    }
    this.node = config.node;
    this.stream = streamKey(config.prefix);
    this.now = deps.now ?? (() => Date.now() / 1000);
    this.share = config.share ? new Set(config.share) : null;
    this.state = new FleetState(deps.db, config.queue);
    this.link = new RedisLink({
      url,
      display: redactUrl(config.redis),
      ...(ca ? { ca } : {}),
      log: deps.log,
      onUp: () => {
        this.consumer.reconnected();
        this.publisher.kick();
        if (this.dropWarned) this.dropWarned = false;
      },
      ...(deps.commandTimeoutMs !== undefined ? { commandTimeoutMs: deps.commandTimeoutMs } : {}),
      ...(deps.backoffMinMs !== undefined ? { backoffMinMs: deps.backoffMinMs } : {}),
      ...(deps.backoffMaxMs !== undefined ? { backoffMaxMs: deps.backoffMaxMs } : {}),
    });
    this.publisher = new Publisher(this.link, this.state, this.stream, config.maxlen, deps.log);
    this.consumer = new Consumer({
      link: this.link,
      state: this.state,
      host: deps.host,
      log: deps.log,
      stream: this.stream,
      key: this.key,
      node: this.node,
      accept: config.accept,
      now: this.now,
      ...(deps.blockMs !== undefined ? { blockMs: deps.blockMs } : {}),
    });
    this.counter = new GlobalCounter({
      link: this.link,
      key: this.key,
      node: this.node,
      prefix: config.prefix,
      limits: config.global_maxretry,
      log: deps.log,
    });
    this.hook = {
      banned: (bans) => this.banned(bans),
      unbanned: (jail, bans) => this.unbanned(jail, bans),
      failure: (jail, ip, time) => {
        if (!this.counter.counts(jail)) return;
        const j = this.deps.host.jail(jail);
        if (j) this.counter.failure(jail, ip, time, j);
      },
    };
  }

  /** Connects and starts reading (returns at once). */
  start(): void {
    const c = this.config;
    this.deps.log.info(
      `fleet: node ${this.node}, stream ${this.stream} on ${redactUrl(c.redis)}; sharing ${c.share ? c.share.join(", ") || "nothing" : "every jail"}, accepting ${c.accept ? c.accept.join(", ") || "nothing" : "every jail"}${this.state.queued > 0 ? `; ${this.state.queued} events queued` : ""}`,
    );
    this.link.start();
    this.consumer.start();
  }

  private shared(jail: string): boolean {
    return this.share === null || this.share.has(jail);
  }

  private publish(events: FleetEvent[]): void {
    if (events.length === 0 || this.stopped) return;
    const dropped = this.state.enqueue(events.length, Date.now(), (ts, i) =>
      encodeEvent({ ...events[i]!, ts }, this.stream, this.key),
    );
    if (dropped > 0) {
      this.dropped += dropped;
      if (!this.dropWarned) {
        this.dropWarned = true;
        this.deps.log.warn(
          `fleet: the outgoing queue is full (${this.config.queue} events): dropping the oldest until Redis is back ([fleet] queue)`,
        );
      }
    }
    this.publisher.kick();
  }

  private banned(bans: readonly BanNote[]): void {
    const out: FleetEvent[] = [];
    for (const b of bans) {
      if (!this.shared(b.jail)) continue;
      out.push({
        type: "ban",
        ip: b.ip,
        jail: b.jail,
        time: b.time,
        bantime: b.bantime,
        expiry: b.bantime < 0 ? -1 : b.time + b.bantime,
        node: this.node,
        failures: b.failures,
        ts: 0,
      });
    }
    this.publish(out);
  }

  private unbanned(jail: string, bans: ReadonlyArray<{ ip: string }>): void {
    if (!this.shared(jail)) return;
    const now = this.now();
    this.publish(
      bans.map((b) => ({
        type: "unban",
        ip: b.ip,
        jail,
        time: now,
        bantime: 0,
        expiry: 0,
        node: this.node,
        failures: 0,
        ts: 0,
      })),
    );
  }

  status(): FleetStatus {
    const l = this.link;
    return {
      node: this.node,
      redis: redactUrl(this.config.redis),
      connected: l.connected,
      since: Math.round(l.since / 1000),
      ...(l.connected ? {} : { error: l.reason }),
      last_event_id: this.consumer.lastEventId,
      lag_ms: this.consumer.lagMs,
      events_in: this.consumer.applied,
      events_out: this.publisher.out,
      rejected: this.consumer.rejected,
      skipped: this.consumer.skipped,
      ignored: this.consumer.ignored,
      queued: this.state.queued,
      dropped: this.dropped,
      global_bans: this.counter.bans,
    };
  }

  /** Publishes what it can within `ms`, then disconnects. What is left stays queued for the next start. */
  async stop(ms = 2000): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.consumer.close();
    await this.publisher.flush(ms);
    this.publisher.close();
    this.link.close();
    await this.consumer.finished();
  }
}
