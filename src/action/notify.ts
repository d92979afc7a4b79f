/**
 * What the notification actions (mail, webhook, command) share: which events they act on, a
 * bounded memory of what was already delivered (so the runner's retry of a half-delivered batch
 * does not deliver twice), and bounded concurrency.
 */
import type { BanEvent } from "./types.ts";

export type Kind = "ban" | "unban";

export function eventKey(kind: Kind, ev: BanEvent): string {
  return `${kind}|${ev.jail}|${ev.ip}|${ev.time}`;
}

/**
 * Events delivered during a call that then failed as a whole: the runner retries the batch, and
 * these are skipped then. Cleared after a call that succeeds, so a later re-sync re-delivers.
 * Forgets its oldest keys beyond `max`.
 */
export class Delivered {
  private readonly keys = new Set<string>();
  constructor(private readonly max = 10_000) {}
  has(key: string): boolean {
    return this.keys.has(key);
  }
  clear(): void {
    this.keys.clear();
  }
  add(key: string): void {
    this.keys.add(key);
    if (this.keys.size > this.max) {
      const oldest = this.keys.values().next().value;
      if (oldest !== undefined) this.keys.delete(oldest);
    }
  }
}

/**
 * Runs `fn` over items with at most `limit` in flight; every item is tried. Rejects with the first
 * error after all have settled.
 */
export async function eachLimited<T>(
  items: T[],
  limit: number,
  fn: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  let firstError: unknown;
  let failed = false;
  const worker = async () => {
    while (next < items.length) {
      const item = items[next++]!;
      try {
        await fn(item);
      } catch (err) {
        if (!failed) {
          failed = true;
          firstError = err;
        }
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
  if (failed) throw firstError;
}
