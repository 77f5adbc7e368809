// murmur's CBOR decoder (RFC 8949). Module-private: users reach it through
// `decodeValue` in codec.ts.
//
// It reads what _cbor_encode.ts writes (and what cbor-x writes with murmur's
// former settings), in one pass that is bounded in time and memory by the
// input's size. It refuses, with the reason as a string in a `CborError`:
// - a tag other than 1 (date), 2/3 (big integers), 258 (set), 259 (map) and
//   the typed arrays of RFC 8746 this runtime has (64-79, 81, 82, 85, 86);
// - a big integer of more than `bigintBytesMax` bytes;
// - nesting deeper than `depthMax` (non-empty arrays and maps, and tags);
// - a length or count that cannot fit in the bytes that remain;
// - indefinite lengths, unassigned simple values, reserved additional info;
// - a map key that is not a string, number, boolean, bigint, null or
//   undefined (outside a tag-259 map), and trailing bytes after the value.
//
// Values: maps become plain objects (keys as strings; `__proto__` becomes an
// own property, never the prototype), tag 259 maps become `Map`, 64-bit
// integers become bigints, byte strings and little-endian typed arrays are
// views of the input when aligned (copies otherwise).

/** Why some bytes are not acceptable CBOR. */
export class CborError extends Error {}

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
const utf8 = new TextDecoder();

type TypedArrayClass = {
  new (buffer: ArrayBufferLike, byteOffset: number, length: number): ArrayBufferView;
  new (length: number): ArrayBufferView & { [i: number]: number | bigint };
  readonly BYTES_PER_ELEMENT: number;
};

/** Typed array tags: [class, little endian] (RFC 8746). */
const TYPED: ReadonlyMap<number, readonly [TypedArrayClass, boolean]> = new Map([
  [64, [Uint8Array, true]],
  [65, [Uint16Array, false]],
  [66, [Uint32Array, false]],
  [67, [BigUint64Array, false]],
  [68, [Uint8ClampedArray, true]],
  [69, [Uint16Array, true]],
  [70, [Uint32Array, true]],
  [71, [BigUint64Array, true]],
  [72, [Int8Array, true]],
  [73, [Int16Array, false]],
  [74, [Int32Array, false]],
  [75, [BigInt64Array, false]],
  [77, [Int16Array, true]],
  [78, [Int32Array, true]],
  [79, [BigInt64Array, true]],
  [81, [Float32Array, false]],
  [82, [Float64Array, false]],
  [85, [Float32Array, true]],
  [86, [Float64Array, true]],
] as [number, readonly [TypedArrayClass, boolean]][]);

const GETTERS: Record<string, (dv: DataView, at: number, le: boolean) => number | bigint> = {
  Uint16Array: (dv, at, le) => dv.getUint16(at, le),
  Uint32Array: (dv, at, le) => dv.getUint32(at, le),
  BigUint64Array: (dv, at, le) => dv.getBigUint64(at, le),
  Int16Array: (dv, at, le) => dv.getInt16(at, le),
  Int32Array: (dv, at, le) => dv.getInt32(at, le),
  BigInt64Array: (dv, at, le) => dv.getBigInt64(at, le),
  Float32Array: (dv, at, le) => dv.getFloat32(at, le),
  Float64Array: (dv, at, le) => dv.getFloat64(at, le),
};

/** Longest text (in bytes, ASCII) kept in the text cache. */
const TEXT_CACHED_MAX = 23;
/** Slots in the text cache (a power of two). */
const TEXT_CACHE_SIZE = 1024;
const textCache: (string | undefined)[] = new Array(TEXT_CACHE_SIZE).fill(undefined);

function refuse(why: string): never {
  throw new CborError(why);
}

function halfToFloat(h: number): number {
  const exp = (h >> 10) & 0x1f;
  const mant = h & 0x3ff;
  const sign = h & 0x8000 ? -1 : 1;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 31) return mant === 0 ? sign * Infinity : NaN;
  return sign * (1024 + mant) * 2 ** (exp - 25);
}

const fc = String.fromCharCode;
/**
 * Up to 8 ASCII bytes as a flat string, without the view that
 * `fromCharCode.apply` needs (endpoints, names and tags are this short).
 */
function shortAscii(b: Uint8Array, p: number, n: number): string {
  switch (n) {
    case 0:
      return "";
    case 1:
      return fc(b[p]!);
    case 2:
      return fc(b[p]!, b[p + 1]!);
    case 3:
      return fc(b[p]!, b[p + 1]!, b[p + 2]!);
    case 4:
      return fc(b[p]!, b[p + 1]!, b[p + 2]!, b[p + 3]!);
    case 5:
      return fc(b[p]!, b[p + 1]!, b[p + 2]!, b[p + 3]!, b[p + 4]!);
    case 6:
      return fc(b[p]!, b[p + 1]!, b[p + 2]!, b[p + 3]!, b[p + 4]!, b[p + 5]!);
    case 7:
      return fc(b[p]!, b[p + 1]!, b[p + 2]!, b[p + 3]!, b[p + 4]!, b[p + 5]!, b[p + 6]!);
    default:
      return fc(b[p]!, b[p + 1]!, b[p + 2]!, b[p + 3]!, b[p + 4]!, b[p + 5]!, b[p + 6]!, b[p + 7]!);
  }
}

/** One decode: the input and the position in it. */
class Reader {
  src: Uint8Array = new Uint8Array(0);
  dataView: DataView | undefined = undefined;
  pos = 0;
  end = 0;
  depthMax = 0;
  bigintBytesMax = 0;

  reset(src: Uint8Array, depthMax: number, bigintBytesMax: number): void {
    this.src = src;
    this.dataView = undefined;
    this.pos = 0;
    this.end = src.length;
    this.depthMax = depthMax;
    this.bigintBytesMax = bigintBytesMax;
  }

  /** A DataView of the input, made on first use (floats and 64-bit integers only). */
  get view(): DataView {
    return this.dataView ??= new DataView(
      this.src.buffer,
      this.src.byteOffset,
      this.src.byteLength,
    );
  }

  /** Reads a head's argument for additional info `ai` (< 28); 2^32 and over come back as numbers too. */
  arg(ai: number): number {
    if (ai < 24) return ai;
    const p = this.pos;
    switch (ai) {
      case 24:
        if (p + 1 > this.end) refuse("truncated CBOR");
        this.pos = p + 1;
        return this.src[p]!;
      case 25:
        if (p + 2 > this.end) refuse("truncated CBOR");
        this.pos = p + 2;
        return (this.src[p]! << 8) | this.src[p + 1]!;
      case 26:
        if (p + 4 > this.end) refuse("truncated CBOR");
        this.pos = p + 4;
        return this.src[p]! * 0x1000000 +
          ((this.src[p + 1]! << 16) | (this.src[p + 2]! << 8) | this.src[p + 3]!);
      default:
        if (p + 8 > this.end) refuse("truncated CBOR");
        this.pos = p + 8;
        return this.view.getUint32(p) * 4294967296 + this.view.getUint32(p + 4);
    }
  }

  /** Reads one item; `depth` is the number of arrays, maps and tags open around it. */
  item(depth: number): unknown {
    if (this.pos >= this.end) refuse("truncated CBOR");
    const ib = this.src[this.pos++]!;
    const major = ib >> 5;
    const ai = ib & 31;
    if (ai >= 28) {
      refuse(
        ai === 31
          ? "indefinite-length CBOR items are not accepted"
          : `reserved CBOR additional info ${ai}`,
      );
    }
    switch (major) {
      case 0:
        if (ai === 27) {
          if (this.pos + 8 > this.end) refuse("truncated CBOR");
          const v = this.view.getBigUint64(this.pos);
          this.pos += 8;
          return v;
        }
        return this.arg(ai);
      case 1:
        if (ai === 27) {
          if (this.pos + 8 > this.end) refuse("truncated CBOR");
          const v = this.view.getBigUint64(this.pos);
          this.pos += 8;
          return -1n - v;
        }
        return -1 - this.arg(ai);
      case 2: {
        const n = this.arg(ai);
        if (n > this.end - this.pos) refuse("CBOR string longer than the frame");
        return this.src.subarray(this.pos, this.pos += n);
      }
      case 3: {
        const n = this.arg(ai);
        if (n > this.end - this.pos) refuse("CBOR string longer than the frame");
        return this.text(n);
      }
      case 4: {
        const n = this.arg(ai);
        if (n > this.end - this.pos) refuse("CBOR count larger than the frame can hold");
        const a = new Array(n);
        if (n > 0) {
          if (depth + 1 > this.depthMax) refuse(`CBOR nested deeper than ${this.depthMax} levels`);
          for (let i = 0; i < n; i++) a[i] = this.item(depth + 1);
        }
        return a;
      }
      case 5:
        return this.object(this.arg(ai), depth);
      case 6:
        return this.tagged(this.arg(ai), depth);
      default:
        switch (ai) {
          case 20:
            return false;
          case 21:
            return true;
          case 22:
            return null;
          case 23:
            return undefined;
          case 25: {
            if (this.pos + 2 > this.end) refuse("truncated CBOR");
            const h = this.view.getUint16(this.pos);
            this.pos += 2;
            return halfToFloat(h);
          }
          case 26: {
            if (this.pos + 4 > this.end) refuse("truncated CBOR");
            const f = this.view.getFloat32(this.pos);
            this.pos += 4;
            return f;
          }
          case 27: {
            if (this.pos + 8 > this.end) refuse("truncated CBOR");
            const f = this.view.getFloat64(this.pos);
            this.pos += 8;
            return f;
          }
          default:
            return refuse(`CBOR simple value ${ai === 24 ? this.arg(24) : ai} is not accepted`);
        }
    }
  }

  /**
   * A text string of `n` bytes at the position. Short ASCII ones (map keys,
   * endpoints, names, tags) come from a cache: the same text is the same
   * string each time, made once (V8 stores properties under a known string,
   * and finds a Map key, much faster than under a fresh one).
   */
  text(n: number): string {
    const src = this.src;
    const p = this.pos;
    this.pos = p + n;
    if (n <= TEXT_CACHED_MAX) {
      let h = n;
      let i = p;
      for (; i < p + n; i++) {
        const c = src[i]!;
        if (c >= 0x80) break;
        h = (Math.imul(h, 31) + c) | 0;
      }
      if (i === p + n) {
        const slot = h & (TEXT_CACHE_SIZE - 1);
        const cached = textCache[slot];
        if (cached !== undefined && cached.length === n) {
          let same = true;
          for (let j = 0; j < n; j++) {
            if (cached.charCodeAt(j) !== src[p + j]) {
              same = false;
              break;
            }
          }
          if (same) return cached;
        }
        // Without the view that `fromCharCode.apply` needs when it is this short.
        const made = n <= 8
          ? shortAscii(src, p, n)
          : String.fromCharCode.apply(null, src.subarray(p, p + n) as never);
        textCache[slot] = made;
        return made;
      }
    }
    return utf8.decode(src.subarray(p, p + n));
  }

  /** A map's `n` entries, as an object (or as a `Map` for tag 259). */
  entries(
    n: number,
    depth: number,
    asMap: boolean,
  ): Record<string, unknown> | Map<unknown, unknown> {
    if (n > (this.end - this.pos) / 2) refuse("CBOR count larger than the frame can hold");
    if (n > 0 && depth + 1 > this.depthMax) {
      refuse(`CBOR nested deeper than ${this.depthMax} levels`);
    }
    if (asMap) {
      const m = new Map<unknown, unknown>();
      for (let i = 0; i < n; i++) m.set(this.item(depth + 1), this.item(depth + 1));
      return m;
    }
    const o: Record<string, unknown> = {};
    for (let i = 0; i < n; i++) {
      const k = this.item(depth + 1); // text keys come from the text cache
      let key: string;
      if (typeof k === "string") key = k;
      else if (
        typeof k === "number" || typeof k === "boolean" || typeof k === "bigint" ||
        k === null || k === undefined
      ) key = String(k);
      else refuse(`CBOR map key of type ${typeof k} is not accepted`);
      const v = this.item(depth + 1);
      if (key === "__proto__") {
        Object.defineProperty(o, key, {
          value: v,
          enumerable: true,
          writable: true,
          configurable: true,
        });
      } else o[key] = v;
    }
    return o;
  }

  object(n: number, depth: number): Record<string, unknown> | Map<unknown, unknown> {
    return this.entries(n, depth, false);
  }

  tagged(tag: number, depth: number): unknown {
    if (depth + 1 > this.depthMax) refuse(`CBOR nested deeper than ${this.depthMax} levels`);
    const inner = depth + 1;
    switch (tag) {
      case 1: {
        const t = this.item(inner);
        if (typeof t !== "number") refuse("CBOR date (tag 1) without a number");
        return new Date(Math.round(t * 1000));
      }
      case 2:
      case 3: {
        const b = this.byteString(tag);
        if (b.length > this.bigintBytesMax) {
          refuse(`CBOR big integer of more than ${this.bigintBytesMax} bytes`);
        }
        let v = 0n;
        for (let i = 0; i < b.length; i++) v = (v << 8n) | BigInt(b[i]!);
        return tag === 2 ? v : -1n - v;
      }
      case 258: {
        const a = this.item(inner);
        if (!Array.isArray(a)) refuse("CBOR set (tag 258) without an array");
        return new Set(a);
      }
      case 259: {
        if (this.pos >= this.end) refuse("truncated CBOR");
        const ib = this.src[this.pos]!;
        if (ib >> 5 !== 5 || (ib & 31) >= 28) refuse("CBOR map (tag 259) without a map");
        this.pos++;
        return this.entries(this.arg(ib & 31), inner, true);
      }
    }
    const typed = TYPED.get(tag);
    if (typed === undefined) refuse(`CBOR tag ${tag} is not accepted`);
    const [Class, le] = typed;
    const b = this.byteString(tag);
    const size = Class.BYTES_PER_ELEMENT;
    if (b.length % size !== 0) refuse(`CBOR typed array (tag ${tag}) of ${b.length} bytes`);
    const count = b.length / size;
    if (size === 1 || (le === LITTLE_ENDIAN && b.byteOffset % size === 0)) {
      return new Class(b.buffer, b.byteOffset, count);
    }
    const out = new Class(count);
    const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
    const get = GETTERS[Class.name]!;
    for (let i = 0; i < count; i++) out[i] = get(dv, i * size, le);
    return out;
  }

  /** The byte string a tag wraps. */
  byteString(tag: number): Uint8Array {
    if (this.pos >= this.end) refuse("truncated CBOR");
    const ib = this.src[this.pos]!;
    if (ib >> 5 !== 2 || (ib & 31) >= 28) refuse(`CBOR tag ${tag} without a byte string`);
    this.pos++;
    const n = this.arg(ib & 31);
    if (n > this.end - this.pos) refuse("CBOR string longer than the frame");
    return this.src.subarray(this.pos, this.pos += n);
  }
}

/**
 * Decodes one CBOR value that fills `bytes`; throws a {@linkcode CborError}
 * naming why the bytes are refused (see the module comment).
 */
export function decodeCbor(bytes: Uint8Array, depthMax: number, bigintBytesMax: number): unknown {
  // Decoding runs no user code, so one reader serves every call.
  const r = shared;
  r.reset(bytes, depthMax, bigintBytesMax);
  try {
    const v = r.item(0);
    if (r.pos !== r.end) refuse(`${r.end - r.pos} trailing bytes after the CBOR value`);
    return v;
  } finally {
    r.reset(EMPTY, 0, 0);
  }
}

const EMPTY = new Uint8Array(0);
const shared = new Reader();
