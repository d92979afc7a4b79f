/**
 * Drains the outgoing queue (in the database) into the stream: XADD with MAXLEN ~ (pipelined by
 * the client), then the published rows are deleted. Runs when something is queued and the link
 * is up, and again on every reconnect. Delivery is at least once: a batch cut by a dropped
 * connection is sent again, and receivers drop the copies by their origin clock.
 */
import type { Logger } from "../daemon/log.ts";
import { LinkDown, type RedisLink } from "./redis.ts";
import type { FleetState } from "./state.ts";

const BATCH = 512;
const SERVER_ERROR_RETRY_MS = 5000;

export class Publisher {
  private running = false;
  private closed = false;
  private retry: ReturnType<typeof setTimeout> | null = null;
  private lastError = "";
  out = 0;

  constructor(
    private readonly link: RedisLink,
    private readonly state: FleetState,
    private readonly stream: string,
    private readonly maxlen: number,
    private readonly log: Logger,
  ) {}

  /** Publishes what is queued, if it can (never waits; safe to call often). */
  kick(): void {
    if (this.running || this.closed || this.retry || !this.link.connected || this.state.queued === 0) return;
    void this.drain();
  }

  private async drain(): Promise<void> {
    this.running = true;
    try {
      while (!this.closed && this.link.connected) {
        const batch = this.state.peek(BATCH);
        if (batch.length === 0) break;
        const cap = String(this.maxlen);
        await Promise.all(
          batch.map((q) => this.link.send("XADD", [this.stream, "MAXLEN", "~", cap, "*", ...q.fields])),
        );
        this.state.ack(batch[batch.length - 1]!.seq, batch.length);
        this.out += batch.length;
        this.lastError = "";
      }
    } catch (e) {
      if (!(e instanceof LinkDown)) {
        // Redis answered with an error (not a stream, out of memory, ...): retry later
        const msg = (e as Error).message;
        if (msg !== this.lastError)
          this.log.error(
            `fleet: cannot publish to ${this.stream}: ${msg} (retrying every ${SERVER_ERROR_RETRY_MS / 1000} s)`,
          );
        this.lastError = msg;
        this.retry = setTimeout(() => {
          this.retry = null;
          this.kick();
        }, SERVER_ERROR_RETRY_MS);
      }
    } finally {
      this.running = false;
    }
    this.kick();
  }

  /** Tries to publish what is queued for up to `ms` (at stop); what is left stays queued. */
  async flush(ms: number): Promise<void> {
    const end = Date.now() + ms;
    while (Date.now() < end && this.link.connected && this.state.queued > 0 && !this.retry) {
      this.kick();
      await Bun.sleep(5);
    }
  }

  close(): void {
    this.closed = true;
    if (this.retry) clearTimeout(this.retry);
    this.retry = null;
  }
}
