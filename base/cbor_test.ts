// murmur's own CBOR codec against cbor-x, the codec it replaced: same bytes
// out, same values back, and the refusals the pre-scan used to make.
import assert from "node:assert/strict";
import fc from "fast-check";
import { Encoder } from "cbor-x/encode";
import {
  BIGINT_BYTES_MAX,
  DECODE_DEPTH_MAX,
  decodeValue,
  encodeForWire,
  encodeValue,
} from "./codec.ts";
import { ProtocolError } from "./errors.ts";

const SEED = Number(Deno.env.get("FC_SEED") ?? Date.now() % 2 ** 31);
// The settings murmur gave cbor-x.
const cborx = new Encoder({ useRecords: false, mapsAsObjects: true, tagUint8Array: false });
const hex = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");

/** Values murmur sends and stores: every type the codec carries, nested. */
const value = fc.letrec((tie) => ({
  leaf: fc.oneof(
    fc.integer(),
    fc.integer({ min: -(2 ** 33), max: 2 ** 33 }),
    fc.maxSafeInteger(),
    fc.double(),
    fc.constantFrom(
      0,
      -0,
      23,
      24,
      255,
      256,
      65_535,
      65_536,
      2 ** 32 - 1,
      2 ** 32,
      -(2 ** 32),
      -(2 ** 32) - 1,
    ),
    fc.bigInt({ min: -(2n ** 200n), max: 2n ** 200n }),
    fc.bigInt({ min: -(2n ** 64n) - 2n, max: 2n ** 64n + 2n }),
    fc.string({ unit: "binary", maxLength: 80 }),
    fc.string({ maxLength: 300 }),
    fc.boolean(),
    fc.constantFrom(null, undefined),
    fc.uint8Array({ maxLength: 300 }),
    fc.date({ noInvalidDate: true, min: new Date("1800-01-01"), max: new Date("2400-01-01") }),
    fc.integer({ min: 0, max: 2 ** 31 }).map((s) => new Date(s * 1000)),
    fc.int16Array({ maxLength: 8 }),
    fc.float64Array({ maxLength: 4, noNaN: true }),
    fc.bigUint64Array({ maxLength: 3 }),
  ),
  node: fc.oneof(
    { depthSize: "small" },
    tie("leaf"),
    fc.array(tie("node"), { maxLength: 6 }),
    fc.dictionary(fc.string({ maxLength: 30 }), tie("node"), { maxKeys: 6 }),
    fc.array(fc.tuple(tie("leaf"), tie("node")), { maxLength: 4 }).map((e) => new Map(e)),
    fc.array(tie("leaf"), { maxLength: 4 }).map((e) => new Set(e)),
  ),
})).node;

/** What `v` arrives as: -0 as 0 (an integer), objects with the plain prototype. */
function sent(v: unknown): unknown {
  if (Object.is(v, -0)) return 0;
  if (Array.isArray(v)) return v.map(sent);
  if (v instanceof Map) return new Map([...v].map(([k, x]) => [sent(k), sent(x)]));
  if (v instanceof Set) return new Set([...v].map(sent));
  if (v === null || typeof v !== "object" || ArrayBuffer.isView(v) || v instanceof Date) return v;
  const o: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v)) {
    Object.defineProperty(o, k, {
      value: sent(x),
      enumerable: true,
      writable: true,
      configurable: true,
    });
  }
  return o;
}

Deno.test(`cbor: murmur's encoder writes cbor-x's bytes, and values come back as they were sent (FC_SEED=${SEED})`, () => {
  console.log(`FC_SEED=${SEED}`);
  fc.assert(
    fc.property(value, (v) => {
      const ours = encodeValue(v);
      const theirs = cborx.encode(v);
      assert.equal(hex(ours), hex(theirs));
      assert.deepEqual(decodeValue(ours), sent(v));
    }),
    { seed: SEED, numRuns: 3000 },
  );
});

Deno.test("cbor: typed arrays come back as their own type, aligned or not, either byte order", () => {
  const arrays = [
    new Uint16Array([1, 65535]),
    new Int32Array([-1, 7]),
    new BigInt64Array([-5n]),
    new Float32Array([1.5]),
    new Uint8ClampedArray([9]),
    new Int8Array([-3]),
  ];
  for (const a of arrays) {
    // Behind a 1-byte string, the payload is misaligned for everything wider than a byte.
    const back = decodeValue(encodeValue(["x", a])) as [string, unknown];
    assert.deepEqual(back[1], a);
  }
  // Big-endian Uint16Array (tag 65) and Float64Array (tag 82), as another machine writes them.
  assert.deepEqual(
    decodeValue(new Uint8Array([0xd8, 65, 0x44, 0x00, 0x01, 0x01, 0x00])),
    new Uint16Array([1, 256]),
  );
  assert.deepEqual(
    decodeValue(new Uint8Array([0xd8, 82, 0x48, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0])),
    new Float64Array([1.5]),
  );
});

Deno.test("cbor: what other CBOR writers use is read: half and single floats, short-form maps, tag 64", () => {
  assert.equal(decodeValue(new Uint8Array([0xf9, 0x3e, 0x00])), 1.5);
  assert.equal(decodeValue(new Uint8Array([0xf9, 0x7c, 0x00])), Infinity);
  assert.equal(decodeValue(new Uint8Array([0xf9, 0x00, 0x01])), 2 ** -24);
  assert.equal(decodeValue(new Uint8Array([0xfa, 0x3f, 0xc0, 0, 0])), 1.5);
  assert.deepEqual(decodeValue(new Uint8Array([0xa1, 0x61, 0x61, 0x01])), { a: 1 });
  assert.deepEqual(decodeValue(new Uint8Array([0xa1, 0x01, 0x02])), { 1: 2 });
  assert.deepEqual(decodeValue(new Uint8Array([0xd8, 64, 0x42, 1, 2])), new Uint8Array([1, 2]));
  assert.deepEqual(decodeValue(new Uint8Array([0xc1, 0x1a, 0, 0, 0, 10])), new Date(10_000));
});

Deno.test("cbor: a __proto__ key arrives as an own property and never as the prototype", () => {
  const v = JSON.parse('{"__proto__": {"polluted": true}, "a": 1}');
  const back = decodeValue(encodeValue(v)) as Record<string, unknown>;
  assert.equal(Object.getPrototypeOf(back), Object.prototype);
  assert.equal(({} as Record<string, unknown>).polluted, undefined);
  assert.deepEqual(Object.keys(back), ["__proto__", "a"]);
  assert.deepEqual(back["__proto__"], { polluted: true });
});

Deno.test("cbor: refused input names why, as a ProtocolError", () => {
  const refused = (bytes: number[], why: RegExp) =>
    assert.throws(() => decodeValue(new Uint8Array(bytes)), (e: unknown) => {
      assert.ok(e instanceof ProtocolError, String(e));
      assert.match((e as Error).message, why);
      return true;
    });
  refused([0x9f, 0x01, 0xff], /indefinite-length/);
  refused([0x1c], /reserved CBOR additional info 28/);
  refused([0xd8, 27, 0x80], /tag 27 is not accepted/); // generic objects (constructors)
  refused([0xd8, 28, 0x01], /tag 28 is not accepted/); // shared references (cycles)
  refused([0xd8, 84, 0x40], /tag 84 is not accepted/); // float16 arrays
  refused([0x01, 0x02], /1 trailing bytes/);
  refused([0x18], /truncated/);
  refused([0x5a, 0xff, 0xff, 0xff, 0xff, 0x00], /longer than the frame/);
  refused([0x9a, 0xff, 0xff, 0xff, 0xff, 0x00], /count larger than the frame/);
  refused([0xba, 0x00, 0x01, 0x00, 0x00, 0x00], /count larger than the frame/);
  refused([0xf0], /simple value 16/);
  refused([0xf8, 0x20], /simple value 32/);
  refused([0xc2, 0x01], /without a byte string/);
  refused(
    [0xc2, 0x58, BIGINT_BYTES_MAX + 1, ...new Array(BIGINT_BYTES_MAX + 1).fill(1)],
    /big integer of more than 128 bytes/,
  );
  refused([0xd9, 0x01, 0x02, 0x01], /set \(tag 258\) without an array/);
  refused([0xd9, 0x01, 0x03, 0x80], /map \(tag 259\) without a map/);
  refused([0xc1, 0x61, 0x78], /date \(tag 1\) without a number/);
  refused([0xa1, 0x80, 0x01], /map key of type object/);
  refused([0xd8, 69, 0x43, 1, 2, 3], /typed array \(tag 69\) of 3 bytes/);
  refused([...new Array(DECODE_DEPTH_MAX + 1).fill(0x81), 0x01], /nested deeper than 100 levels/);
  // Exactly at the limit is accepted; empty containers do not count.
  decodeValue(new Uint8Array([...new Array(DECODE_DEPTH_MAX).fill(0x81), 0x80]));
});

Deno.test("cbor: the encoder refuses what a receiver would refuse, at the same depth", () => {
  let deep: unknown = 1;
  for (let i = 0; i < DECODE_DEPTH_MAX; i++) deep = [deep];
  assert.equal(decodeValue(encodeValue(deep)) !== undefined, true);
  assert.throws(() => encodeForWire([deep], "msg"), /msg(\[0\])+ nests deeper than/);
  // A Map is a tag and a map: two levels each, as the decoder counts them.
  let maps: unknown = 1;
  for (let i = 0; i < DECODE_DEPTH_MAX / 2; i++) maps = new Map([["k", maps]]);
  decodeValue(encodeValue(maps));
  assert.throws(() => encodeValue(new Map([["k", maps]])), TypeError);
  const cyclic: Record<string, unknown> = { a: 1 };
  cyclic.self = cyclic;
  assert.throws(() => encodeForWire(cyclic, "msg"), /msg\.self is a cycle/);
  assert.throws(() => encodeValue({ big: 2n ** 1025n }), /value\.big is a bigint of 1026 bits/);
  assert.throws(() => encodeValue({ e: new Error("x") }), /value\.e is an Error/);
  assert.throws(() => encodeValue(new String("s")), /iterable String cannot be encoded/);
  assert.throws(() => encodeValue([Symbol("s")]), /value\[0\] is a symbol/);
});

Deno.test("cbor: an encode from inside a getter of a value being encoded gets its own output", () => {
  const inner = { n: 1 };
  let nested: Uint8Array | undefined;
  const outer = {
    a: "before",
    get b() {
      nested = encodeValue(inner);
      return 2;
    },
    c: "after",
  };
  const bytes = encodeValue(outer);
  assert.deepEqual(decodeValue(bytes), { a: "before", b: 2, c: "after" });
  assert.deepEqual(decodeValue(nested!), inner);
});

Deno.test("cbor: a failed encode leaves earlier encodings intact and the next one correct", () => {
  const kept = encodeValue({ keep: "me" });
  const copy = kept.slice();
  assert.throws(() => encodeValue({ pad: "x".repeat(100), f: () => 1 }));
  const next = encodeValue([1, 2, 3]);
  assert.deepEqual([...kept], [...copy]);
  assert.deepEqual(decodeValue(next), [1, 2, 3]);
});
