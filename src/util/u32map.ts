/**
 * A map from 32-bit unsigned integers (IPv4 addresses) to small non-negative integers, on typed
 * arrays: no garbage-collected cell per entry. A Map of the tens of thousands of addresses a
 * scan meets keeps the collector's heap (and with it the process) several MB larger.
 */
export class U32Map {
  private keys: Uint32Array;
  /** Value + 1; 0: a free slot. */
  private values: Int32Array;
  private mask: number;
  /** 32 - log2(slots): the multiplicative hash's high bits pick the slot. */
  private shift: number;
  size = 0;

  constructor(capacity = 1024) {
    let n = 16;
    while (n < capacity * 2) n *= 2;
    this.keys = new Uint32Array(n);
    this.values = new Int32Array(n);
    this.mask = n - 1;
    this.shift = 32 - Math.log2(n);
  }

  /** The value of `key`, or -1. */
  get(key: number): number {
    key >>>= 0;
    const keys = this.keys;
    const values = this.values;
    const mask = this.mask;
    for (let s = Math.imul(key, 0x9e3779b1) >>> this.shift; ; s = (s + 1) & mask) {
      const v = values[s]!;
      if (v === 0) return -1;
      if (keys[s] === key) return v - 1;
    }
  }

  /** Sets `key` to `value` (≥ 0). */
  set(key: number, value: number): void {
    key >>>= 0;
    const keys = this.keys;
    const values = this.values;
    const mask = this.mask;
    let s = Math.imul(key, 0x9e3779b1) >>> this.shift;
    for (; values[s] !== 0; s = (s + 1) & mask)
      if (keys[s] === key) {
        values[s] = value + 1;
        return;
      }
    keys[s] = key;
    values[s] = value + 1;
    if (++this.size * 2 > keys.length) this.grow();
  }

  private grow(): void {
    const oldKeys = this.keys;
    const oldValues = this.values;
    const n = oldKeys.length * 2;
    this.keys = new Uint32Array(n);
    this.values = new Int32Array(n);
    this.mask = n - 1;
    this.shift = 32 - Math.log2(n);
    this.size = 0;
    for (let s = 0; s < oldKeys.length; s++) if (oldValues[s] !== 0) this.set(oldKeys[s]!, oldValues[s]! - 1);
  }
}
