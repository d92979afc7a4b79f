/**
 * What JailCore keeps per id lives in IdMaps: Maps for the daemon's ids (strings), arrays for
 * scan's (small numbers, see scan/ids.ts): a replay of hundreds of thousands of failures then
 * indexes instead of hashing, several times a failure.
 */
export interface IdMap<K, V> {
  readonly size: number;
  get(id: K): V | undefined;
  set(id: K, value: V): unknown;
  delete(id: K): unknown;
  clear(): void;
  forEach(fn: (value: V, id: K) => void): void;
}

/** An IdMap for ids that are small non-negative integers, numbered densely from 0. */
export class DenseIdMap<V> implements IdMap<number, V> {
  private readonly values: Array<V | undefined> = [];
  size = 0;

  get(id: number): V | undefined {
    return this.values[id];
  }

  set(id: number, value: V): this {
    const values = this.values;
    // Grown one slot at a time: the array stays dense (no holes, no sparse mode).
    while (values.length <= id) values.push(undefined);
    if (values[id] === undefined) this.size++;
    values[id] = value;
    return this;
  }

  delete(id: number): boolean {
    if (this.values[id] === undefined) return false;
    this.values[id] = undefined;
    this.size--;
    return true;
  }

  clear(): void {
    this.values.length = 0;
    this.size = 0;
  }

  /** Deleting the current id from `fn` is allowed (as with a Map). */
  forEach(fn: (value: V, id: number) => void): void {
    const values = this.values;
    for (let id = 0; id < values.length; id++) {
      const v = values[id];
      if (v !== undefined) fn(v, id);
    }
  }
}
