/**
 * The failure ids of a scan run, numbered.
 *
 * A source of results (a worker process, or the in-process processor) numbers each id it meets
 * once for the whole run, in the order met (SourceIds); a result brings the ids numbered since
 * the source's last result. The parent's IdTable numbers them for the run, whatever source sends
 * them, and each source's numbers are translated to the run's (IdTranslation): the jails and the
 * counters index arrays by these numbers instead of hashing strings per failure.
 *
 * An IPv4 id crosses as its address's number, any other id encoded: a hash, the UTF-8 length,
 * the UTF-8 bytes padded to whole 32-bit words. The parent finds or adds it by that number or
 * those words (hash tables on typed arrays: no string is made, no Map is used, the child did the
 * hashing). Names are made when something prints them.
 */

import { detach } from "../util/detach.ts";
import { formatIPv4, parseIPv4 } from "../util/ip.ts";
import { U32Map } from "../util/u32map.ts";
import type { ChunkId } from "./process.ts";
import { dfgOnly } from "./tier.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: false, ignoreBOM: true });
const NEWLINE = 10;

/** Kinds of ids (IdTable.kinds). */
const ENCODED = 0;
const ODD = 1;
const V4 = 2;

/** FNV-1a over 32-bit words (the padded UTF-8 of an id): children and parent agree on it. */
function hashWords(w: Uint32Array, start: number, n: number): number {
  let h = 0x811c9dc5;
  for (let i = start; i < start + n; i++) h = Math.imul(h ^ w[i]!, 0x01000193);
  return h >>> 0;
}

/**
 * Encodes ids as consecutive [hash, UTF-8 length, padded UTF-8 words] records; null when one
 * cannot be (a newline or a lone surrogate in it: rare `<F-ID>` captures, sent as strings).
 */
export function encodeIds(ids: readonly string[]): Uint32Array | null {
  const text = ids.join("\n");
  if (!text.isWellFormed() || ids.some((id) => id.includes("\n"))) return null;
  const bytes = encoder.encode(text);
  const out = new Uint32Array(2 * ids.length + ((bytes.length + 3 * ids.length) >> 2) + 1);
  const outBytes = new Uint8Array(out.buffer);
  let w = 0;
  let start = 0;
  for (let i = 0; i < ids.length; i++) {
    let end = bytes.indexOf(NEWLINE, start);
    if (end < 0) end = bytes.length;
    const len = end - start;
    const n = (len + 3) >> 2;
    outBytes.set(bytes.subarray(start, end), (w + 2) * 4); // padding stays 0
    out[w] = hashWords(out, w + 2, n);
    out[w + 1] = len;
    w += 2 + n;
    start = end + 1;
  }
  return out.subarray(0, w);
}

export class IdTable {
  /** How many ids. */
  size = 0;
  /** Failures counted per id (within --since/--until). Replaced when it grows: re-read it. */
  failures = new Int32Array(1024);
  /** Bans per id (see addBan). Replaced when it grows: re-read it. */
  bans = new Int32Array(1024);
  private banned = 0;
  /** An encoded id's hash; an IPv4 id's address. */
  private hashes = new Uint32Array(1024);
  /** What each id is: ENCODED, ODD or V4. */
  private kinds = new Uint8Array(1024);
  /** Each id's UTF-8 in `words`: first word, byte length. */
  private starts = new Uint32Array(1024);
  private lengths = new Uint32Array(1024);
  private words = new Uint32Array(16 * 1024);
  private used = 0;
  /** Open addressing, linear probing: id number + 1, 0 for a free slot. */
  private slots = new Int32Array(2048);
  private readonly names: Array<string | undefined> = [];
  /** Ids that encodeIds cannot take (a newline, a lone surrogate): by string, not in `slots`. */
  private readonly odd = new Map<string, number>();
  /**
   * IPv4 ids by address, not in `slots`. Made for tens of thousands at once: growing rehashes
   * every entry in code still cold when the first results come (a scan of the 1M-line auth.log:
   * ~3 ms of the parent's CPU, at its busiest).
   */
  private readonly v4 = new U32Map(32 * 1024);

  constructor() {
    dfgOnly(
      IdTable.prototype.numberOf,
      IdTable.prototype.numberOfV4,
      IdTable.prototype.same,
      IdTable.prototype.add,
      U32Map.prototype.get,
      U32Map.prototype.set,
    );
  }

  /** The number of the IPv4 id whose address is `v4` (a u32), a new one the first time. */
  numberOfV4(v4: number): number {
    let x = this.v4.get(v4);
    if (x < 0) {
      x = this.add(v4, 0, this.words, 0, V4);
      this.v4.set(v4, x);
    }
    return x;
  }

  /** The number of the encoded id at `at` in `w` (see encodeIds), a new one the first time. */
  numberOf(w: Uint32Array, at: number): number {
    const h = w[at]!;
    const len = w[at + 1]!;
    const slots = this.slots;
    const mask = slots.length - 1;
    let s = h & mask;
    for (let v = slots[s]!; v !== 0; v = slots[s]!) {
      const x = v - 1;
      if (this.hashes[x] === h && this.lengths[x] === len && this.same(x, w, at + 2, (len + 3) >> 2))
        return x;
      s = (s + 1) & mask;
    }
    const x = this.add(h, len, w, at + 2);
    slots[s] = x + 1;
    if (this.size * 2 > slots.length) this.rehash();
    return x;
  }

  /** The number of an id given as a string (canonical IPv4 text is the address's id). */
  numberOfString(id: string): number {
    const v4 = parseIPv4(id);
    if (v4 >= 0) return this.numberOfV4(v4);
    const w = encodeIds([id]);
    if (w !== null) return this.numberOf(w, 0);
    let x = this.odd.get(id);
    if (x === undefined) {
      x = this.add(0, 0, this.words, 0, ODD);
      this.odd.set(id, x);
      this.names[x] = id;
    }
    return x;
  }

  name(x: number): string {
    let n = this.names[x];
    if (n === undefined) {
      n =
        this.kinds[x] === V4
          ? formatIPv4(this.hashes[x]!)
          : decoder.decode(new Uint8Array(this.words.buffer, this.starts[x]! * 4, this.lengths[x]!));
      this.names[x] = n;
    }
    return n;
  }

  /** Counts a ban of id x. */
  addBan(x: number): void {
    if (this.bans[x]!++ === 0) this.banned++;
  }

  /** Distinct banned ids. */
  bannedCount(): number {
    return this.banned;
  }

  /** The ids with failures, most failures first (then by id), the first `limit` of them. */
  offenders(limit: number): Array<{ ip: string; failures: number; bans: number }> {
    if (limit <= 0) return [];
    const { failures, bans } = this;
    const before = (a: number, b: number) =>
      failures[b]! - failures[a]! || (this.name(a) < this.name(b) ? -1 : 1);
    const order: number[] = [];
    if (limit > 256) {
      for (let x = 0; x < this.size; x++) if (failures[x]! > 0) order.push(x);
      order.sort(before);
      if (order.length > limit) order.length = limit;
    } else {
      // The top few of many: one pass keeping the best `limit` in order, no sort of everything.
      // (fewer failures than the last kept: out, without comparing names)
      let least = 0;
      for (let x = 0; x < this.size; x++) {
        const f = failures[x]!;
        if (f === 0 || f < least) continue;
        if (order.length === limit && before(x, order[limit - 1]!) > 0) continue;
        let at = order.length;
        while (at > 0 && before(x, order[at - 1]!) < 0) at--;
        order.splice(at, 0, x);
        if (order.length > limit) order.pop();
        if (order.length === limit) least = failures[order[limit - 1]!]!;
      }
    }
    return order.map((x) => ({ ip: this.name(x), failures: failures[x]!, bans: bans[x]! }));
  }

  private same(x: number, w: Uint32Array, from: number, n: number): boolean {
    const own = this.words;
    const s = this.starts[x]!;
    for (let i = 0; i < n; i++) if (own[s + i] !== w[from + i]) return false;
    return true;
  }

  private add(h: number, len: number, w: Uint32Array, from: number, kind = ENCODED): number {
    const x = this.size++;
    if (x === this.hashes.length) this.grow();
    this.kinds[x] = kind;
    const n = (len + 3) >> 2;
    if (this.used + n > this.words.length) {
      const more = new Uint32Array(Math.max(this.words.length * 2, this.used + n));
      more.set(this.words.subarray(0, this.used));
      this.words = more;
    }
    const own = this.words;
    const at = this.used;
    for (let i = 0; i < n; i++) own[at + i] = w[from + i]!;
    this.hashes[x] = h;
    this.starts[x] = at;
    this.lengths[x] = len;
    this.used += n;
    return x;
  }

  private grow(): void {
    const n = this.hashes.length * 2;
    const more = <T extends Uint32Array | Int32Array | Uint8Array>(a: T, b: T): T => {
      b.set(a);
      return b;
    };
    this.hashes = more(this.hashes, new Uint32Array(n));
    this.kinds = more(this.kinds, new Uint8Array(n));
    this.starts = more(this.starts, new Uint32Array(n));
    this.lengths = more(this.lengths, new Uint32Array(n));
    this.failures = more(this.failures, new Int32Array(n));
    this.bans = more(this.bans, new Int32Array(n));
  }

  private rehash(): void {
    const slots = new Int32Array(this.slots.length * 2);
    const mask = slots.length - 1;
    for (let x = 0; x < this.size; x++) {
      if (this.kinds[x] !== ENCODED) continue;
      let s = this.hashes[x]! & mask;
      while (slots[s] !== 0) s = (s + 1) & mask;
      slots[s] = x + 1;
    }
    this.slots = slots;
  }
}

/**
 * The ids a result brings (see SourceIds.take): its source numbered them `base`, `base + 1`...;
 * `kinds[i]` tells which list the i-th is in: 0 the IPv4 addresses (`v4`, in order), 1 the
 * others (encoded, see encodeIds, or strings when they could not be).
 */
export interface NewIds {
  base: number;
  kinds: Uint8Array;
  v4: Uint32Array;
  others: Uint32Array | string[];
}

/** A source's own id numbering (see SourceIds) → the run's numbers. */
export class IdTranslation {
  /** Source number → run number; replaced when it grows (results keep the one they were given). */
  map = new Int32Array(1024);
  private count = 0;

  constructor(private readonly table: IdTable) {}

  /** Takes the ids a result brings (they follow the ones taken before, or the source is broken). */
  extendFrame(ids: NewIds): void {
    const { kinds, v4, others } = ids;
    this.expect(ids.base, kinds.length);
    const map = this.map;
    const table = this.table;
    let a = 0;
    let p = 0;
    for (let i = 0; i < kinds.length; i++) {
      let x: number;
      if (kinds[i] === 0) x = table.numberOfV4(v4[a++]!);
      else if (Array.isArray(others)) x = table.numberOfString(others[p++]!);
      else {
        x = table.numberOf(others, p);
        p += 2 + ((others[p + 1]! + 3) >> 2);
      }
      map[this.count++] = x;
    }
  }

  /** Takes a result's ids as ChunkResult has them (the in-process path). */
  extend(base: number, ids: readonly ChunkId[]): void {
    this.expect(base, ids.length);
    for (const id of ids)
      this.map[this.count++] =
        typeof id === "number" ? this.table.numberOfV4(id) : this.table.numberOfString(id);
  }

  private expect(base: number, n: number): void {
    if (base !== this.count)
      throw new Error(`scan: a result's ids start at ${base}, ${this.count} were expected`);
    if (this.count + n <= this.map.length) return;
    const m = new Int32Array(Math.max(this.map.length * 2, this.count + n));
    m.set(this.map.subarray(0, this.count));
    this.map = m;
  }
}

/** What SourceIds needs of the native engine's id table (engine.ts, nativeIds). */
export interface NativeIds {
  /** The number of an IPv4 id (a u32), the next number when it is new. */
  v4(address: number): number;
  /** The next number. */
  next(): number;
  /** Numbers handed out. */
  count(): number;
}

/**
 * The ids one source numbers, each once for the whole run, in the order met; a result takes the
 * ones numbered since the last (take). Canonical IPv4 text is its address's number. With the
 * native engine the numbers come from its table (the engine numbers IPv4 ids itself, see
 * engine.ts), else from here.
 */
export class SourceIds {
  /** A run is numbering ids here (from begin to its take): one at a time. */
  private busy = false;
  private base = 0;
  private fresh: ChunkId[] = [];
  private counter = 0;
  private readonly v4 = new U32Map();
  private readonly other = new Map<string, number>();

  constructor(readonly native: NativeIds | null = null) {}

  /** Numbers handed out. */
  get count(): number {
    return this.native ? this.native.count() : this.counter;
  }

  /** The number of an id; `v4`: its IPv4 number when the caller has it (else read here). */
  number(id: string, v4 = parseIPv4(id)): number {
    return v4 >= 0 ? this.numberV4(v4) : this.numberOther(id);
  }

  /** The number of an IPv4 id (a u32). */
  numberV4(v4: number): number {
    const native = this.native;
    if (native) {
      const before = native.count();
      const x = native.v4(v4);
      if (x >= before) this.place(x, v4);
      return x;
    }
    let x = this.v4.get(v4);
    if (x < 0) {
      x = this.counter++;
      this.v4.set(v4, x);
      this.place(x, v4);
    }
    return x;
  }

  /** The number of an id that is not canonical IPv4 text. */
  numberOther(id: string): number {
    let x = this.other.get(id);
    if (x === undefined) {
      x = this.native ? this.native.next() : this.counter++;
      const own = detach(id);
      this.other.set(own, x);
      this.place(x, own);
    }
    return x;
  }

  /** An IPv4 id the native engine numbered `x` itself (it was new). */
  place(x: number, id: ChunkId): void {
    this.fresh[x - this.base] = id;
  }

  /** A run starts numbering ids here; it takes them when it ends (runs of a source cannot overlap). */
  begin(): void {
    if (this.busy) throw new Error("scan: a chunk run started before the last one finished");
    this.busy = true;
  }

  /** The ids numbered since the last take: number `idBase + i` is `ids[i]`. The run is over. */
  take(): { idBase: number; ids: ChunkId[] } {
    this.busy = false;
    const out = { idBase: this.base, ids: this.fresh };
    const count = this.count;
    if (out.ids.length !== count - this.base || out.ids.includes(undefined as unknown as ChunkId))
      throw new Error(`scan: ids ${this.base} to ${count - 1} were not all named`);
    this.base = count;
    this.fresh = [];
    return out;
  }
}
