/**
 * The link to Redis: two connections of Bun's built-in client (one for commands, one for the
 * blocking XREAD, which would otherwise hold up every XADD behind it), supervised here rather
 * than by the client:
 *
 * - autoReconnect is off: Bun's own reconnect hides the outage (no onclose) and leaves a blocked
 *   XREAD pending forever after it reconnects. We drop both connections on any error, timeout or
 *   close, and reconnect with exponential backoff (0.2 s doubling to 10 s, ±25 % jitter: a fleet of
 *   hundreds of hosts costs Redis a few connection attempts a second while it is down).
 * - Every command has a deadline (neither client has one: a stopped Redis holds a command
 *   forever); a missed deadline counts as the link being down.
 * - While down, send() fails at once: nothing waits on Redis in the ban path.
 * - The outage is logged once when it starts and once when it ends, not per retry or event.
 */
import { RedisClient } from "bun";
import type { Logger } from "../daemon/log.ts";
import { withTimeout } from "../util/timeout.ts";
import { redactUrl } from "./config.ts";

export class LinkDown extends Error {
  constructor(message = "redis link down") {
    super(message);
    this.name = "LinkDown";
  }
}

export interface LinkOptions {
  url: string;
  /** How logs name the server (default: the URL, password hidden). */
  display?: string;
  /** PEM CA bundle for rediss://. */
  ca?: string;
  log: Logger;
  /** Called each time both connections are up (start and every recovery). */
  onUp?: () => void;
  /** Deadline of a command, ms (default 3000). */
  commandTimeoutMs?: number;
  backoffMinMs?: number;
  backoffMaxMs?: number;
}

const DEFAULT_TIMEOUT = 3000;

export class RedisLink {
  private cmd: RedisClient | null = null;
  private blk: RedisClient | null = null;
  private gen = 0;
  private up = false;
  private closed = false;
  private everUp = false;
  private downSince = 0;
  private downReason = "";
  private attempts = 0;
  private retryTimer: ReturnType<typeof setTimeout> | null = null;
  private waiters: Array<() => void> = [];
  private readonly timeout: number;
  private readonly minMs: number;
  private readonly maxMs: number;
  readonly where: string;
  /** Epoch ms of the last change between up and down. */
  since = Date.now();
  /** Why the link is down (empty when up). */
  get reason(): string {
    return this.up ? "" : this.downReason;
  }

  constructor(private readonly o: LinkOptions) {
    this.timeout = o.commandTimeoutMs ?? DEFAULT_TIMEOUT;
    this.minMs = o.backoffMinMs ?? 200;
    this.maxMs = o.backoffMaxMs ?? 10000;
    this.where = o.display ?? redactUrl(o.url);
    this.downReason = "connecting";
  }

  get connected(): boolean {
    return this.up;
  }

  /** Starts connecting (returns at once; onUp says when it is done). */
  start(): void {
    void this.connect();
  }

  private client(): RedisClient {
    return new RedisClient(this.o.url, {
      autoReconnect: false,
      enableOfflineQueue: false,
      connectionTimeout: this.timeout,
      ...(this.o.ca ? { tls: { ca: this.o.ca } } : {}),
    });
  }

  private async connect(): Promise<void> {
    if (this.closed) return;
    const gen = ++this.gen;
    const cmd = this.client();
    const blk = this.client();
    const onclose = (e: Error | undefined) => {
      if (gen === this.gen) this.fail(e?.message || "connection closed");
    };
    try {
      await withDeadline(Promise.all([cmd.connect(), blk.connect()]), this.timeout + 500, "connect");
      if (gen !== this.gen || this.closed) {
        cmd.close();
        blk.close();
        return;
      }
      // a connection that closes during the handshake leaves no trace but this: ask something
      await withDeadline(cmd.send("PING", []), this.timeout, "PING");
    } catch (e) {
      cmd.close();
      blk.close();
      if (gen === this.gen) this.retry(describe(e));
      return;
    }
    if (gen !== this.gen || this.closed) {
      cmd.close();
      blk.close();
      return;
    }
    cmd.onclose = onclose;
    blk.onclose = onclose;
    this.cmd = cmd;
    this.blk = blk;
    this.up = true;
    this.attempts = 0;
    this.since = Date.now();
    this.o.log.info(
      this.everUp
        ? `fleet: connected to ${this.where} again (down for ${secs(this.since - this.downSince)})`
        : `fleet: connected to ${this.where}`,
    );
    this.everUp = true;
    this.downSince = 0;
    for (const w of this.waiters.splice(0)) w();
    this.o.onUp?.();
  }

  /** Marks the link down (logged once per outage) and schedules a reconnect. */
  fail(reason: string): void {
    if (this.closed || !this.up) return; // not up: a connect attempt is failing, it retries itself
    this.up = false;
    this.since = Date.now();
    this.downSince = this.since;
    this.gen++;
    this.drop();
    this.retry(reason);
  }

  private drop(): void {
    for (const x of [this.cmd, this.blk]) {
      if (!x) continue;
      x.onclose = null;
      x.close();
    }
    this.cmd = null;
    this.blk = null;
  }

  private retry(reason: string): void {
    if (this.closed || this.retryTimer) return;
    this.downReason = reason;
    if (this.attempts === 0) {
      if (!this.downSince) this.downSince = Date.now();
      this.o.log.warn(
        `fleet: ${this.everUp ? "lost" : "cannot reach"} ${this.where}: ${reason}; bans stay local and outgoing events are queued until it is back (retrying with backoff)`,
      );
    } else this.o.log.debug(`fleet: ${this.where}: attempt ${this.attempts}: ${reason}`);
    const base = Math.min(this.maxMs, this.minMs * 2 ** Math.min(this.attempts, 20));
    const delay = Math.round(base * (0.75 + Math.random() * 0.5));
    this.attempts++;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      void this.connect();
    }, delay);
  }

  /** Resolves when the link is up (at once if it is). */
  waitUp(): Promise<void> {
    if (this.up) return Promise.resolve();
    return new Promise((r) => this.waiters.push(r));
  }

  /** A command on the command connection, with a deadline. Fails at once while down. */
  send(cmd: string, args: string[], timeoutMs = this.timeout): Promise<unknown> {
    return this.on(this.cmd, cmd, args, timeoutMs);
  }

  /** A blocking command (XREAD BLOCK) on its own connection; `timeoutMs` must exceed the block. */
  block(cmd: string, args: string[], timeoutMs: number): Promise<unknown> {
    return this.on(this.blk, cmd, args, timeoutMs);
  }

  private async on(c: RedisClient | null, cmd: string, args: string[], timeoutMs: number): Promise<unknown> {
    if (!this.up || !c) throw new LinkDown();
    const gen = this.gen;
    try {
      return await withDeadline(c.send(cmd, args), timeoutMs, cmd);
    } catch (e) {
      // a server error reply (WRONGTYPE, NOSCRIPT, ...) is an answer, the link is fine
      if ((e as { code?: string }).code === "ERR_REDIS_SERVER_ERROR") throw e;
      if (gen === this.gen) this.fail(describe(e));
      throw new LinkDown(describe(e));
    }
  }

  /** Closes both connections; no more reconnects. */
  close(): void {
    this.closed = true;
    this.up = false;
    this.gen++;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.drop();
    for (const w of this.waiters.splice(0)) w();
  }

  get isClosed(): boolean {
    return this.closed;
  }
}

function describe(e: unknown): string {
  const m = (e as Error)?.message ?? String(e);
  // Bun reports a refused connection and a rejected password alike
  if (/^Connection (closed|has failed)/.test(m)) return `${m} (Redis down, wrong address, password or TLS?)`;
  return m;
}

function secs(ms: number): string {
  return ms < 10000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.round(ms / 1000)} s`;
}

class Deadline extends Error {}

export function withDeadline<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  return withTimeout(p, ms, () => new Deadline(`${what}: no reply within ${ms} ms`));
}
