/**
 * The live bans of every jail and their unban schedule: one timer for the earliest expiry (a
 * min-heap underneath), not one timer per ban, so 100 k bans cost a heap, not 100 k timers.
 */

export interface LiveBan {
  jail: string;
  ip: string;
  /** Epoch seconds. */
  time: number;
  /** Seconds; -1 permanent. */
  bantime: number;
  /** Epoch seconds; Infinity when permanent. */
  until: number;
  count: number;
  failures: number;
  matches: string[];
}

interface Slot {
  until: number;
  jail: string;
  ip: string;
}

/** setTimeout's longest delay (about 24.8 days): longer waits are re-armed. */
const MAX_DELAY = 2 ** 31 - 1;

export class BanBook {
  private readonly byJail = new Map<string, Map<string, LiveBan>>();
  private heap: Slot[] = [];
  private timer: ReturnType<typeof setTimeout> | null = null;
  private armedFor = Number.POSITIVE_INFINITY;
  private size_ = 0;

  /** `onExpire` gets every ban whose time is up (already removed from the book). */
  constructor(
    private readonly onExpire: (bans: LiveBan[]) => void,
    private readonly now: () => number = () => Date.now() / 1000,
  ) {}

  get size(): number {
    return this.size_;
  }

  jail(name: string): ReadonlyMap<string, LiveBan> {
    return this.byJail.get(name) ?? new Map();
  }

  get(jail: string, ip: string): LiveBan | undefined {
    return this.byJail.get(jail)?.get(ip);
  }

  /** Every jail holding `ip`. */
  jailsOf(ip: string): string[] {
    const out: string[] = [];
    for (const [j, m] of this.byJail) if (m.has(ip)) out.push(j);
    return out;
  }

  add(b: LiveBan): void {
    let m = this.byJail.get(b.jail);
    if (!m) {
      m = new Map();
      this.byJail.set(b.jail, m);
    }
    if (!m.has(b.ip)) this.size_++;
    m.set(b.ip, b);
    if (Number.isFinite(b.until)) {
      this.push({ until: b.until, jail: b.jail, ip: b.ip });
      if (b.until < this.armedFor) this.arm();
    }
  }

  remove(jail: string, ip: string): LiveBan | undefined {
    const m = this.byJail.get(jail);
    const b = m?.get(ip);
    if (b) {
      m!.delete(ip);
      this.size_--;
      // the heap slot stays and is skipped when it comes up; rebuild when mostly stale
      if (this.heap.length > 1024 && this.heap.length > 4 * this.size_) this.rebuild();
    }
    return b;
  }

  /** Removes and returns every ban of a jail. */
  removeJail(jail: string): LiveBan[] {
    const m = this.byJail.get(jail);
    if (!m) return [];
    this.byJail.delete(jail);
    this.size_ -= m.size;
    return [...m.values()];
  }

  /** Cancels the timer (the bans stay listed). */
  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.armedFor = Number.POSITIVE_INFINITY;
  }

  /** Expires what is due now (the timer calls it; tests may too). */
  expire(): void {
    const now = this.now();
    const due: LiveBan[] = [];
    while (this.heap.length > 0 && this.heap[0]!.until <= now) {
      const s = this.pop()!;
      const b = this.byJail.get(s.jail)?.get(s.ip);
      if (b && b.until === s.until) {
        this.byJail.get(s.jail)!.delete(s.ip);
        this.size_--;
        due.push(b);
      }
    }
    this.arm();
    if (due.length > 0) this.onExpire(due);
  }

  private arm(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    // drop stale slots at the top so the timer is set for a real ban
    while (this.heap.length > 0) {
      const s = this.heap[0]!;
      const b = this.byJail.get(s.jail)?.get(s.ip);
      if (b && b.until === s.until) break;
      this.pop();
    }
    if (this.heap.length === 0) {
      this.armedFor = Number.POSITIVE_INFINITY;
      return;
    }
    const until = this.heap[0]!.until;
    this.armedFor = until;
    const delay = Math.max(0, Math.min(MAX_DELAY, Math.ceil((until - this.now()) * 1000)));
    this.timer = setTimeout(() => {
      this.timer = null;
      this.armedFor = Number.POSITIVE_INFINITY;
      this.expire();
    }, delay);
  }

  private rebuild(): void {
    const slots: Slot[] = [];
    for (const m of this.byJail.values()) {
      for (const b of m.values())
        if (Number.isFinite(b.until)) slots.push({ until: b.until, jail: b.jail, ip: b.ip });
    }
    slots.sort((a, b) => a.until - b.until); // a sorted array is a valid heap
    this.heap = slots;
  }

  private push(s: Slot): void {
    const h = this.heap;
    h.push(s);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (h[p]!.until <= s.until) break;
      h[i] = h[p]!;
      i = p;
    }
    h[i] = s;
  }

  private pop(): Slot | undefined {
    const h = this.heap;
    const top = h[0];
    const last = h.pop();
    if (h.length === 0 || last === undefined) return top;
    let i = 0;
    const n = h.length;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      const r = l + 1;
      const c = r < n && h[r]!.until < h[l]!.until ? r : l;
      if (h[c]!.until >= last.until) break;
      h[i] = h[c]!;
      i = c;
    }
    h[i] = last;
    return top;
  }
}
