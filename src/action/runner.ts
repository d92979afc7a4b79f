/**
 * ActionRunner: one per action instance in the daemon. It turns single ban/unban events into
 * batches and keeps the action's calls in order:
 *
 * - ban()/unban() only queue (they never wait for the action); everything queued before the
 *   batch timer fires (0 ms: the same tick), or while a call is in flight, goes in one batch.
 * - Calls on one action never overlap; runners are independent, so a slow action delays nothing
 *   else.
 * - start() runs lazily before the first call.
 * - A failing call is logged (with the program's stderr) and retried with exponential backoff
 *   (1 s doubling to 60 s); pending events stay queued, in order, and merge with new ones. After
 *   a failure the action is started again and re-synced with the bans the runner knows are
 *   active (restore(), or ban() with `restored: true`) — so a ruleset someone flushed heals.
 * - Per address, a batch keeps the order of events: ban then unban → unban (idempotent, safe);
 *   unban then ban → unban, then ban (the ban's new timeout wins); ban, ban → the later ban.
 */
import { errorMessage } from "../util/errors.ts";
import type { Action, ActionLogger, BanEvent } from "./types.ts";

export interface Timers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export interface RunnerOptions {
  /** First retry delay (default 1000 ms); doubles per consecutive failure. */
  backoffMinMs?: number;
  /** Longest retry delay (default 60 000 ms). */
  backoffMaxMs?: number;
  /** Wait before a batch goes out after its first event (default 0: the next macrotask). */
  batchDelayMs?: number;
  /** Call action.check() this often when idle and re-start/re-sync when it says false (0 = never). */
  checkIntervalMs?: number;
  timers?: Timers;
}

type Item =
  | { op: "ban" | "unban"; ev: BanEvent }
  | { op: "restore"; events: BanEvent[]; done: () => void }
  | { op: "flush"; done: () => void };

interface Pair {
  unban?: BanEvent;
  ban?: BanEvent;
}

export interface RunnerStatus {
  action: string;
  started: boolean;
  pending: number;
  active: number;
  failures: number;
  lastError: string | undefined;
  /** Epoch ms of the next retry when failing. */
  retryAt: number | undefined;
}

const realTimers: Timers = {
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (h) => clearTimeout(h as ReturnType<typeof setTimeout>),
};

export class ActionRunner {
  private readonly queue: Item[] = [];
  private inflight = 0;
  private running = false;
  private timer: unknown;
  private checkTimer: unknown;
  private retryAt: number | undefined;
  private started = false;
  private everStarted = false;
  private resync = false;
  private closed = false;
  private consecutiveFailures = 0;
  private error: string | undefined;
  private idleWaiters: (() => void)[] = [];
  /** What the runner knows is applied: ip → ban (matches dropped). */
  private readonly active = new Map<string, BanEvent>();
  private readonly minMs: number;
  private readonly maxMs: number;
  private readonly delayMs: number;
  private readonly checkMs: number;
  private readonly timers: Timers;

  constructor(
    readonly action: Action,
    private readonly log: ActionLogger,
    opts: RunnerOptions = {},
  ) {
    this.minMs = opts.backoffMinMs ?? 1000;
    this.maxMs = opts.backoffMaxMs ?? 60_000;
    this.delayMs = opts.batchDelayMs ?? 0;
    this.checkMs = opts.checkIntervalMs ?? 0;
    this.timers = opts.timers ?? realTimers;
    if (this.checkMs > 0) this.scheduleCheck();
  }

  /** Events waiting or in flight. */
  get pending(): number {
    let n = this.inflight;
    for (const item of this.queue) n += item.op === "restore" ? item.events.length : 1;
    return n;
  }

  /** The last failure's message (with stderr), cleared by the next success. */
  get lastError(): string | undefined {
    return this.error;
  }

  status(): RunnerStatus {
    return {
      action: this.action.name,
      started: this.started,
      pending: this.pending,
      active: this.active.size,
      failures: this.consecutiveFailures,
      lastError: this.error,
      retryAt: this.retryAt,
    };
  }

  ban(ev: BanEvent): void {
    this.push({ op: "ban", ev });
  }

  unban(ev: BanEvent): void {
    this.push({ op: "unban", ev });
  }

  /**
   * Make the action's bans exactly `events` (daemon start: the store's active bans). One call to
   * action.restore() (one transaction for nftables), or ban() where there is no restore().
   * Resolves when applied (after retries, if any).
   */
  restore(events: BanEvent[]): Promise<void> {
    return new Promise((done) => this.push({ op: "restore", events, done }));
  }

  /** Remove every ban of the action (keeping its structure). Resolves when applied. */
  flushBans(): Promise<void> {
    return new Promise((done) => this.push({ op: "flush", done }));
  }

  /** Resolves when nothing is pending (never, while the action keeps failing). */
  idle(): Promise<void> {
    if (this.isIdle()) return Promise.resolve();
    return new Promise((r) => this.idleWaiters.push(r));
  }

  /**
   * Stop accepting events, wait up to `timeoutMs` (default 5 s) for pending ones, cancel timers;
   * with `stop`, tear the action down (action.stop()). Events still pending are dropped (the
   * store has them; the next start restores them); pending restore()/flushBans() promises resolve.
   */
  async close(opts: { stop?: boolean; timeoutMs?: number } = {}): Promise<void> {
    this.closed = true;
    if (this.checkTimer !== undefined) this.timers.clearTimeout(this.checkTimer);
    let timeout: unknown;
    await Promise.race([
      this.idle(),
      new Promise<void>((r) => {
        timeout = this.timers.setTimeout(r, opts.timeoutMs ?? 5000);
      }),
    ]);
    this.timers.clearTimeout(timeout);
    if (this.timer !== undefined) this.timers.clearTimeout(this.timer);
    this.timer = undefined;
    if (!this.isIdle()) this.log.warn(`${this.action.name}: closing with ${this.pending} events not applied`);
    // dropped restore/flush requests resolve (not applied) so nobody waits forever
    for (const item of this.queue.splice(0)) if (item.op === "restore" || item.op === "flush") item.done();
    if (opts.stop && this.everStarted) {
      // wait for a call in flight: calls never overlap
      while (this.running) await new Promise((r) => setTimeout(r, 10));
      await this.action.stop();
      this.started = false;
    }
  }

  private isIdle(): boolean {
    return this.queue.length === 0 && !this.running && !this.resync;
  }

  private push(item: Item): void {
    if (this.closed) {
      if (item.op === "restore" || item.op === "flush") item.done();
      return;
    }
    this.queue.push(item);
    this.schedule(this.delayMs);
  }

  private schedule(ms: number): void {
    if (this.timer !== undefined || this.running) return;
    this.timer = this.timers.setTimeout(() => {
      this.timer = undefined;
      this.retryAt = undefined;
      void this.pump();
    }, ms);
  }

  private scheduleCheck(): void {
    this.checkTimer = this.timers.setTimeout(async () => {
      if (this.closed) return;
      if (this.started && this.isIdle() && this.action.check) {
        try {
          if (!(await this.action.check())) {
            this.log.warn(`${this.action.name}: check failed (rules or sets gone); starting again`);
            this.started = false;
            this.resync = true;
            this.schedule(0);
          }
        } catch (err) {
          this.log.warn(`${this.action.name}: check: ${errorMessage(err)}`);
        }
      }
      this.scheduleCheck();
    }, this.checkMs);
  }

  private async pump(): Promise<void> {
    if (this.running) return;
    this.running = true;
    try {
      while (this.queue.length > 0 || (this.resync && this.everStarted)) {
        try {
          await this.step();
          if (this.consecutiveFailures > 0) this.log.info(`${this.action.name}: recovered`);
          this.consecutiveFailures = 0;
          this.error = undefined;
        } catch (err) {
          this.consecutiveFailures++;
          this.error = errorMessage(err);
          if (this.everStarted) this.resync = true;
          this.started = false;
          const delay = Math.min(this.maxMs, this.minMs * 2 ** (this.consecutiveFailures - 1));
          this.retryAt = Date.now() + delay;
          this.log.error(
            `${this.action.name}: ${this.error} (${this.pending} pending; retry in ${delay / 1000} s)`,
          );
          this.running = false;
          this.schedule(delay);
          return;
        }
      }
    } finally {
      this.running = false;
    }
    if (this.isIdle()) {
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      for (const w of waiters) w();
    }
  }

  /** One unit of work: start/re-sync if needed, then a control item or one batch. */
  private async step(): Promise<void> {
    const head = this.queue[0];
    if (!this.started) {
      await this.action.start();
      this.started = true;
      this.everStarted = true;
    }
    if (this.resync) {
      // a queued restore replaces everything anyway
      if (head?.op !== "restore") await this.resyncActive();
      this.resync = false;
    }
    if (!head) return;
    if (head.op === "restore") {
      this.inflight = head.events.length;
      this.queue.shift();
      try {
        if (this.action.restore) await this.action.restore(head.events);
        else if (head.events.length) await this.action.ban(head.events);
      } catch (err) {
        this.queue.unshift(head);
        throw err;
      } finally {
        this.inflight = 0;
      }
      this.active.clear();
      for (const ev of head.events) this.active.set(ev.ip, { ...ev, matches: [] });
      head.done();
      return;
    }
    if (head.op === "flush") {
      await this.action.flush();
      this.queue.shift();
      this.active.clear();
      head.done();
      return;
    }
    await this.batch();
  }

  private async resyncActive(): Promise<void> {
    const events = [...this.active.values()].map((ev) => ({ ...ev, restored: true }));
    this.log.info(`${this.action.name}: re-applying ${events.length} active bans`);
    if (this.action.restore) await this.action.restore(events);
    else if (events.length) await this.action.ban(events);
  }

  /** Takes the leading ban/unban items, reduces them per address, applies unbans then bans. */
  private async batch(): Promise<void> {
    let k = 0;
    const pairs = new Map<string, Pair>();
    while (k < this.queue.length) {
      const item = this.queue[k]!;
      if (item.op !== "ban" && item.op !== "unban") break;
      const p = pairs.get(item.ev.ip) ?? {};
      if (item.op === "unban") {
        p.unban = item.ev;
        p.ban = undefined;
      } else {
        p.ban = item.ev;
      }
      pairs.set(item.ev.ip, p);
      k++;
    }
    this.queue.splice(0, k);
    const unbans: BanEvent[] = [];
    const bans: BanEvent[] = [];
    for (const p of pairs.values()) {
      if (p.unban) unbans.push(p.unban);
      if (p.ban) bans.push(p.ban);
    }
    const putBack = (u: BanEvent[], b: BanEvent[]) => {
      const items: Item[] = [
        ...u.map((ev) => ({ op: "unban" as const, ev })),
        ...b.map((ev) => ({ op: "ban" as const, ev })),
      ];
      this.queue.unshift(...items);
    };
    const a = this.action;
    this.inflight = unbans.length + bans.length;
    try {
      if (unbans.length && bans.length && a.update) {
        try {
          await a.update(unbans, bans);
        } catch (err) {
          putBack(unbans, bans);
          throw err;
        }
      } else {
        if (unbans.length) {
          try {
            await this.action.unban(unbans);
          } catch (err) {
            putBack(unbans, bans);
            throw err;
          }
        }
        for (const ev of unbans) this.active.delete(ev.ip);
        if (bans.length) {
          try {
            await this.action.ban(bans);
          } catch (err) {
            putBack([], bans);
            throw err;
          }
        }
      }
    } finally {
      this.inflight = 0;
    }
    for (const ev of unbans) this.active.delete(ev.ip);
    for (const ev of bans) this.active.set(ev.ip, { ...ev, matches: [] });
  }
}
