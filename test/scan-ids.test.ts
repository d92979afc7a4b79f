/**
 * The parent side of `scan`: ids numbered once per run whatever child sends them, frames cut
 * anywhere by the pipe, and JailCore on numbered ids (arrays) deciding exactly as on strings
 * (Maps).
 */
import { describe, expect, test } from "bun:test";
import { DenseIdMap } from "../src/jail/idmap.ts";
import { NO_INCREMENT } from "../src/jail/increment.ts";
import { type BanDecision, JailCore } from "../src/jail/jail.ts";
import { type ChildReply, FrameReader, frame, resultFrame, resultOf } from "../src/scan/child.ts";
import { encodeIds, IdTable, IdTranslation, SourceIds } from "../src/scan/ids.ts";
import type { ChunkResult } from "../src/scan/process.ts";
import { formatIPv4, parseIPv4 } from "../src/util/ip.ts";
import { U32Map } from "../src/util/u32map.ts";

const ODD_IDS = ["192.0.2.1", "2001:db8::1", "", "\uFEFFbom", "häßlich-ünicode", "a".repeat(300), "x\ny"];

/**
 * A source's result over failures of these ids (by text; canonical IPv4 text becomes a number
 * in SourceIds, as in a child), numbered in `source` as a ChunkRun does.
 */
function chunk(source: SourceIds, failures: string[], seq = 0): ChunkResult {
  const idIndex = Uint32Array.from(failures, (id) => source.number(id));
  const { idBase, ids } = source.take();
  return {
    seq,
    lines: idIndex.length,
    bytes: 100,
    noDate: 0,
    binary: 0,
    invalid: 0,
    perFilter: [idIndex.length],
    ids,
    idBase,
    idIndex,
    times: Float64Array.from(idIndex, (_, k) => 1000 + k),
    filters: new Uint8Array(idIndex.length),
    first: 1000,
    last: 1000 + idIndex.length - 1,
  };
}

/** A result as the parent gets it from a child's frame, its ids numbered through `tr`. */
function viaFrame(r: ChunkResult, tr: IdTranslation, table: IdTable): { ids: string[]; times: number[] } {
  const reader = new FrameReader();
  reader.push(resultFrame(r));
  const f = reader.next()!;
  const got = resultOf(f.header as ChildReply, f.payload)!;
  tr.extendFrame(got.newIds);
  return {
    ids: [...got.idIndex].map((i) => table.name(tr.map[i]!)),
    times: [...got.times],
  };
}

/** The run's table, and two children: each its ids (SourceIds) and their translation. */
function twoChildren() {
  const table = new IdTable();
  return {
    table,
    a: new IdTranslation(table),
    b: new IdTranslation(table),
    srcA: new SourceIds(),
    srcB: new SourceIds(),
  };
}

describe("scan ids", () => {
  test("one number per id across children and chunks; names come back exactly", () => {
    const { table, a, b, srcA, srcB } = twoChildren();
    const ids = ODD_IDS.filter((id) => !id.includes("\n"));
    const pick = (...at: number[]) => at.map((i) => ids[i]!);
    // child A sends all over two chunks, child B the same ids in another order
    const r1 = viaFrame(chunk(srcA, pick(0, 1, 2, 1)), a, table);
    const r2 = viaFrame(chunk(srcA, pick(5, 3, 0, 4)), a, table);
    const r3 = viaFrame(chunk(srcB, [...ids].reverse()), b, table);
    expect(r1.ids).toEqual(pick(0, 1, 2, 1));
    expect(r2.ids).toEqual(pick(5, 3, 0, 4));
    expect(r3.ids).toEqual([...ids].reverse());
    expect(r2.times).toEqual([1000, 1001, 1002, 1003]);
    expect(table.size).toBe(ids.length);
    for (const id of ids) expect(table.name(table.numberOfString(id))).toBe(id);
  });

  test("a source numbers each id once for the run; a result brings only the new ones", () => {
    const src = new SourceIds();
    const r1 = chunk(src, ["192.0.2.7", "2001:db8::1", "host", "192.0.2.7"]);
    const r2 = chunk(src, ["2001:db8::1", "192.0.2.7", "0.0.0.0", "192.0.2.7"]);
    expect(r1.idBase).toBe(0);
    expect(r1.ids).toEqual([parseIPv4("192.0.2.7"), "2001:db8::1", "host"]);
    expect([...r1.idIndex]).toEqual([0, 1, 2, 0]);
    expect(r2.idBase).toBe(3);
    expect(r2.ids).toEqual([0]);
    expect([...r2.idIndex]).toEqual([1, 0, 3, 0]);
    expect(chunk(src, []).ids).toEqual([]);
    expect(src.count).toBe(4);
  });

  test("a source's runs cannot overlap", () => {
    const src = new SourceIds();
    src.begin();
    expect(() => src.begin()).toThrow("started before the last one finished");
    src.take();
    src.begin();
  });

  test("results out of their source's order are refused", () => {
    const src = new SourceIds();
    const r1 = chunk(src, ["192.0.2.1"]);
    const r2 = chunk(src, ["192.0.2.2"]);
    const tr = new IdTranslation(new IdTable());
    expect(() => viaFrame(r2, tr, new IdTable())).toThrow("ids start at 1, 0 were expected");
    expect(() => tr.extend(r2.idBase, r2.ids)).toThrow("ids start at 1, 0 were expected");
    tr.extend(r1.idBase, r1.ids);
    tr.extend(r2.idBase, r2.ids);
  });

  test("ids that cannot be encoded (newline, lone surrogate) go as strings, and still match", () => {
    expect(encodeIds(["a", "x\ny"])).toBeNull();
    expect(encodeIds(["a", "\uD800z"])).toBeNull();
    const table = new IdTable();
    const tr = new IdTranslation(table);
    const odd = ["192.0.2.1", "x\ny", "\uD800z"];
    const r = viaFrame(chunk(new SourceIds(), [...odd].reverse()), tr, table);
    expect(r.ids).toEqual(["\uD800z", "x\ny", "192.0.2.1"]);
    expect(table.numberOfString("192.0.2.1")).toBe(tr.map[2]!);
    expect(table.numberOfString("\uD800z")).toBe(tr.map[0]!);
    expect(table.size).toBe(3);
  });

  test("results keep fractional times and large id numbers exactly", () => {
    const table = new IdTable();
    const tr = new IdTranslation(table);
    const src = new SourceIds();
    viaFrame(
      chunk(
        src,
        Array.from({ length: 70000 }, (_, i) => `old${i}`),
      ),
      tr,
      table,
    ); // sent many already
    const c = chunk(src, ["b", "a", "b"]);
    c.times = Float64Array.from([1.5, -3, 2 ** 33]);
    const r = viaFrame(c, tr, table);
    expect(r.ids).toEqual(["b", "a", "b"]);
    expect(r.times).toEqual([1.5, -3, 2 ** 33]);
    expect(Math.max(...c.idIndex)).toBe(70001);
  });

  test("IPv4 ids go as numbers, one id per address whether given as a number or as text", () => {
    const { table, a, b, srcA, srcB } = twoChildren();
    // canonical IPv4 text is its address's number; other text is not
    expect(srcA.number("192.0.2.1")).toBe(srcA.numberV4(parseIPv4("192.0.2.1")));
    expect(srcA.number("192.0.2.01")).not.toBe(srcA.number("192.0.2.1"));
    const r1 = viaFrame(chunk(srcA, ["2001:db8::1", "192.0.2.1", "255.255.255.255", "192.0.2.1"]), a, table);
    expect(r1.ids).toEqual(["2001:db8::1", "192.0.2.1", "255.255.255.255", "192.0.2.1"]);
    // child B meets the same addresses: the same run numbers
    const r2 = viaFrame(chunk(srcB, ["255.255.255.255", "192.0.2.1", "0.0.0.0"]), b, table);
    expect(r2.ids).toEqual(["255.255.255.255", "192.0.2.1", "0.0.0.0"]);
    expect(b.map[0]).toBe(table.numberOfString("255.255.255.255"));
    expect(b.map[1]).toBe(table.numberOfV4(parseIPv4("192.0.2.1")));
    expect(table.size).toBe(5);
    // the local path: mixed ids straight from a ChunkResult
    const c = new IdTranslation(table);
    c.extend(0, [parseIPv4("0.0.0.0"), "192.0.2.01", "192.0.2.1"]);
    expect([...c.map.subarray(0, 3)].map((x) => table.name(x))).toEqual([
      "0.0.0.0",
      "192.0.2.01",
      "192.0.2.1",
    ]);
    expect(table.size).toBe(5);
  });

  test("many ids: the table grows and rehashes without losing any", () => {
    const table = new IdTable();
    const ids = Array.from({ length: 20000 }, (_, i) => `host-${i >> 16}.${(i >> 8) & 255}.${i & 255}`);
    const v4 = Array.from({ length: 20000 }, (_, i) => (0x0a000000 + i * 7919) >>> 0);
    const byNumber = v4.map((n) => table.numberOfV4(n));
    expect(new Set(byNumber).size).toBe(v4.length);
    expect(table.name(byNumber[777]!)).toBe(formatIPv4(v4[777]!));
    const first = ids.map((id) => table.numberOfString(id));
    expect(new Set(first).size).toBe(ids.length);
    const encoded = encodeIds(ids)!;
    const out: number[] = [];
    for (let p = 0; p < encoded.length; p += 2 + ((encoded[p + 1]! + 3) >> 2))
      out.push(table.numberOf(encoded, p));
    expect(out).toEqual(first);
    expect(table.name(first[12345]!)).toBe(ids[12345]!);
  });

  test("offenders: the top N of a full sort by failures, then id", () => {
    const table = new IdTable();
    const ids = Array.from({ length: 500 }, (_, i) => `198.51.100.${i % 250}-${i}`);
    for (const [i, id] of ids.entries()) {
      const x = table.numberOfString(id);
      table.failures[x] = (i * 7919) % 13; // ties, and ids without failures
      if (i % 3 === 0) table.addBan(x);
    }
    const all = table.offenders(Number.POSITIVE_INFINITY);
    const expected = ids
      .map((id) => ({ ip: id, x: table.numberOfString(id) }))
      .filter((o) => table.failures[o.x]! > 0)
      .map((o) => ({ ip: o.ip, failures: table.failures[o.x]!, bans: table.bans[o.x]! }))
      .sort((a, b) => b.failures - a.failures || (a.ip < b.ip ? -1 : 1));
    expect(all).toEqual(expected);
    expect(table.offenders(10)).toEqual(expected.slice(0, 10));
    expect(table.offenders(300)).toEqual(expected.slice(0, 300));
    expect(table.offenders(0)).toEqual([]);
    expect(table.bannedCount()).toBe(ids.filter((_, i) => i % 3 === 0).length);
  });
});

describe("frames", () => {
  test("frames cut anywhere come out whole, their payload 8-byte aligned", () => {
    const frames = [
      frame({ type: "a", n: 1 }, [new Uint8Array([1, 2, 3])]),
      frame({ type: "b", pad: "xyz" }, [new Uint8Array(1000).fill(7)]),
      frame({ type: "c" }),
    ];
    const all = new Uint8Array(frames.reduce((s, f) => s + f.length, 0));
    let at = 0;
    for (const f of frames) {
      all.set(f, at);
      at += f.length;
    }
    for (const [step, offset] of [1, 3, 7, 64, all.length].flatMap((n) => [
      [n, 0],
      [n, 1],
    ])) {
      const reader = new FrameReader();
      const got: Array<{ header: unknown; payload: Uint8Array }> = [];
      for (let i = 0; i < all.length; i += step!) {
        // chunks at an odd offset of their buffer too, as a pipe may give
        const piece = all.subarray(i, Math.min(all.length, i + step!));
        const buf = new Uint8Array(piece.length + offset!);
        buf.set(piece, offset);
        reader.push(buf.subarray(offset));
        for (let f = reader.next(); f !== null; f = reader.next()) got.push(f);
      }
      expect(got.map((f) => f.header)).toEqual([
        { type: "a", n: 1 },
        { type: "b", pad: "xyz" },
        { type: "c" },
      ]);
      expect([...got[0]!.payload]).toEqual([1, 2, 3]);
      expect(got[1]!.payload.length).toBe(1000);
      expect(got[2]!.payload.length).toBe(0);
      for (const f of got) expect(f.payload.byteOffset % 8).toBe(0);
    }
  });

  test("result frames built in the reused buffer are the fresh ones, result after result", () => {
    const src = new SourceIds();
    const many = Array.from({ length: 3000 }, (_, i) => `10.0.${i >> 8}.${i & 255}`);
    const results = [
      chunk(src, ["192.0.2.1", "2001:db8::1", "192.0.2.1"]),
      chunk(src, [...many, "häßlich-ünicode", "x\ny"], 1), // grows the buffer; an id sent as a string
      chunk(src, ["192.0.2.7"], 2), // smaller than the buffer
    ];
    results[1]!.times[5] = 1005.25; // f64 times
    for (const r of results) {
      const fresh = resultFrame(r);
      const reused = resultFrame(r, true);
      expect(reused.byteOffset).toBe(0);
      expect(Buffer.from(reused).equals(Buffer.from(fresh))).toBe(true);
    }
  });
});

describe("JailCore on numbered ids", () => {
  for (const [what, over] of [
    ["maxretry 3", {}],
    ["maxretry 1", { maxretry: 1 }],
    ["findtime 0", { findtime: 0 }],
    ["findtime -5", { findtime: -5 }],
    ["increment", { increment: { ...NO_INCREMENT, enabled: true } }],
  ] as const)
    test(`arrays (DenseIdMap) decide exactly as Maps: out-of-order times, purges, merged failures, unbans, resets; ${what}`, () => {
      let seed = 11;
      const rnd = (n: number) => {
        seed = (seed * 1103515245 + 12345) & 0x7fffffff;
        return seed % n;
      };
      const policy = { name: "j", maxretry: 3, findtime: 600, bantime: 300, ...over };
      const byString = new JailCore(policy);
      const byNumber = new JailCore<number>(policy, undefined, () => new DenseIdMap());
      const show = (b: BanDecision<string | number>) =>
        `${b.id}@${b.time} ${b.failures} ${b.firstFailure} ${b.count} ${b.bantime}`;
      let t = 0;
      for (let i = 0; i < 30000; i++) {
        t += rnd(20) - 3; // mostly forward, sometimes back
        const x = rnd(i < 15000 ? 50 : 3000); // then many ids
        const attempts = rnd(10) === 0 ? 1 + rnd(5) : undefined; // a merged failure now and then
        const a = byString.failure({ id: `id${x}`, time: t, ...(attempts ? { attempts } : {}) });
        const b = byNumber.failure({ id: x, time: t, ...(attempts ? { attempts } : {}) });
        expect(b.kind).toBe(a.kind);
        if (a.kind === "ban" && b.kind === "ban")
          expect(show(b.ban).slice(String(x).length)).toBe(show(a.ban).slice(`id${x}`.length));
        if (a.kind === "counted" && b.kind === "counted") expect(b.failures).toBe(a.failures);
        if (a.kind === "banned-already" && b.kind === "banned-already") expect(b.until).toBe(a.until);
        if (i % 997 === 0) {
          byString.purge(t);
          byNumber.purge(t);
          expect(byNumber.failuresNow).toBe(byString.failuresNow);
        }
        if (i % 1009 === 0) {
          byString.unban(`id${x}`);
          byNumber.unban(x);
          byString.markBanned(`id${(x + 1) % 50}`, t + 100);
          byNumber.markBanned((x + 1) % 50, t + 100);
        }
        if (i === 20000) {
          byString.reset();
          byNumber.reset();
        }
      }
      expect(byNumber.failuresTotal).toBe(byString.failuresTotal);
      expect(byNumber.bansTotal).toBe(byString.bansTotal);
      expect(byNumber.failuresNow).toBe(byString.failuresNow);
      // a findtime that is not positive keeps no failure: nothing to ban
      if (policy.findtime > 0) expect(byString.bansTotal).toBeGreaterThan(100);
    });

  test("shared verdicts are frozen; a ban's lines are its own", () => {
    const j = new JailCore({ name: "j", maxretry: 2, findtime: 600, bantime: 600 });
    const v = j.failure({ id: "a", time: 0, matches: ["l1"] });
    expect(Object.isFrozen(v)).toBe(true);
    const ban = j.failure({ id: "a", time: 1, matches: ["l2"] });
    expect(ban.kind).toBe("ban");
    if (ban.kind !== "ban") return;
    expect(ban.ban.matches).toEqual(["l1", "l2"]);
    const again = j.failure({ id: "a", time: 2, matches: ["l3"] });
    expect(again.kind).toBe("banned-already");
    expect(Object.isFrozen(again)).toBe(true);
    j.unban("a");
    j.failure({ id: "a", time: 3, matches: ["l4"] });
    expect(ban.ban.matches).toEqual(["l1", "l2"]);
  });
});

describe("U32Map", () => {
  test("agrees with a Map over growth, collisions and the edge keys", () => {
    const m = new U32Map(4);
    const ref = new Map<number, number>();
    let seed = 7;
    const next = () => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return seed;
    };
    const keys = [0, 0xffffffff, 1, 0x80000000];
    for (let i = 0; i < 50000; i++) keys.push(i % 3 === 0 ? next() : (next() & 0xff) << 24); // many alike low bits
    keys.forEach((key, i) => {
      const k = key >>> 0;
      m.set(k, i);
      ref.set(k, i);
    });
    expect(m.size).toBe(ref.size);
    for (const [k, v] of ref) expect(m.get(k)).toBe(v);
    for (let i = 0; i < 1000; i++) {
      const k = next();
      expect(m.get(k)).toBe(ref.get(k) ?? -1);
    }
  });
});
