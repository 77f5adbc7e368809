// murmur's CBOR encoder (RFC 8949). Module-private: users reach it through
// `encodeValue` and `encodeForWire` in codec.ts.
//
// It writes what cbor-x 1.6 writes with murmur's former settings (no records,
// maps as objects, Uint8Array untagged), byte for byte, so nodes of either
// codec read each other and stored state stays readable; tests check the bytes
// against cbor-x. In short:
// - integers in 32 bits (and negatives down to -2^32) as CBOR integers in
//   their shortest form, every other number as a float64;
// - bigints: a 64-bit CBOR integer when they fit, else tags 2/3;
// - strings as UTF-8 text; plain objects as maps with a 2-byte count (0xb9);
//   `Map` as tag 259 around a map, `Set` as tag 258 around an array, `Date`
//   as tag 1 (whole seconds as an integer, else a float64);
// - `Uint8Array`, `ArrayBuffer` and `DataView` as byte strings, other typed
//   arrays as the RFC 8746 tags (64-87) of this machine's byte order;
// - class instances as objects of their own enumerable properties.
//
// Refused with a `TypeError`: functions, symbols, `Error`, `RegExp`,
// `Promise`, `WeakMap`, `WeakSet`, other iterables than arrays, maps and sets,
// nesting deeper than the caller's limit (cycles end there), and big integers
// longer than the caller's limit. codec.ts then names the path of the part.
//
// Output: every encode writes after the previous one in a shared chunk and
// returns a view of its own bytes; a chunk is never written again once a view
// of it was handed out, so views stay valid for as long as they are held.

/** Size of a fresh output chunk; a value larger than that gets a chunk of its own size. */
const CHUNK_BYTES = 16 * 1024;
/** A new chunk is started when fewer bytes than this remain in the current one. */
const CHUNK_SLACK = 512;

const utf8 = new TextEncoder();
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
const BIG_2_64 = 1n << 64n;

/** RFC 8746 tag of each typed array other than Uint8Array, for this machine's byte order. */
function typedArrayTag(v: ArrayBufferView): number {
  const be = LITTLE_ENDIAN ? 0 : 4;
  if (v instanceof Uint8ClampedArray) return 68;
  if (v instanceof Uint16Array) return 69 - be;
  if (v instanceof Uint32Array) return 70 - be;
  if (v instanceof BigUint64Array) return 71 - be;
  if (v instanceof Int8Array) return 72;
  if (v instanceof Int16Array) return 77 - be;
  if (v instanceof Int32Array) return 78 - be;
  if (v instanceof BigInt64Array) return 79 - be;
  if (v instanceof Float32Array) return 85 - be;
  if (v instanceof Float64Array) return 86 - be;
  return -1;
}

/** One encoder state: the chunk being filled and the start of the value being written. */
class Writer {
  buf = new Uint8Array(CHUNK_BYTES);
  view = new DataView(this.buf.buffer);
  pos = 0;
  start = 0;
  busy = false;
  depthMax = 0;
  bigintBytesMax = 0;

  /** Makes room for `n` more bytes, moving the value written so far to a larger chunk. */
  room(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    const used = this.pos - this.start;
    const next = new Uint8Array(Math.max(CHUNK_BYTES, (used + n) * 2));
    next.set(this.buf.subarray(this.start, this.pos));
    this.buf = next;
    this.view = new DataView(next.buffer);
    this.start = 0;
    this.pos = used;
  }

  /** Writes a head: major type `major` (shifted) with argument `n` (< 2^32). */
  head(major: number, n: number): void {
    const b = this.buf;
    if (n < 24) b[this.pos++] = major | n;
    else if (n < 0x100) {
      b[this.pos++] = major | 24;
      b[this.pos++] = n;
    } else if (n < 0x10000) {
      b[this.pos++] = major | 25;
      b[this.pos++] = n >> 8;
      b[this.pos++] = n & 0xff;
    } else {
      b[this.pos++] = major | 26;
      this.view.setUint32(this.pos, n);
      this.pos += 4;
    }
  }

  value(v: unknown, depth: number): void {
    if (this.pos + 16 > this.buf.length) this.room(16);
    switch (typeof v) {
      case "string":
        return this.string(v);
      case "number":
        return this.number(v);
      case "object":
        if (v === null) {
          this.buf[this.pos++] = 0xf6;
          return;
        }
        return this.object(v, depth);
      case "boolean":
        this.buf[this.pos++] = v ? 0xf5 : 0xf4;
        return;
      case "undefined":
        this.buf[this.pos++] = 0xf7;
        return;
      case "bigint":
        return this.bigint(v, depth);
      default:
        throw new TypeError(`a ${typeof v} cannot be encoded`);
    }
  }

  number(v: number): void {
    const b = this.buf;
    if (v >>> 0 === v) this.head(0x00, v);
    else if (v >> 0 === v) this.head(0x20, -1 - v);
    else if (v < 0 && v >= -0x100000000 && Math.floor(v) === v) {
      b[this.pos++] = 0x3a;
      this.view.setUint32(this.pos, -1 - v);
      this.pos += 4;
    } else {
      b[this.pos++] = 0xfb;
      this.view.setFloat64(this.pos, v);
      this.pos += 8;
    }
  }

  bigint(v: bigint, depth: number): void {
    if (v >= 0n && v < BIG_2_64) {
      this.buf[this.pos++] = 0x1b;
      this.view.setBigUint64(this.pos, v);
      this.pos += 8;
      return;
    }
    if (v < 0n && v > -BIG_2_64) {
      this.buf[this.pos++] = 0x3b;
      this.view.setBigUint64(this.pos, -v - 1n);
      this.pos += 8;
      return;
    }
    let m = v >= 0n ? v : -1n - v;
    const bytes: number[] = [];
    while (m > 0n) {
      bytes.push(Number(m & 0xffn));
      m >>= 8n;
    }
    if (bytes.length > this.bigintBytesMax) {
      throw new TypeError(`a bigint of more than ${this.bigintBytesMax} bytes cannot be encoded`);
    }
    this.tag(v >= 0n ? 2 : 3, depth);
    this.bytes(new Uint8Array(bytes.reverse()));
  }

  string(s: string): void {
    const n = s.length;
    const headSize = n < 0x18 ? 1 : n < 0x100 ? 2 : n < 0x10000 ? 3 : 5;
    const max = n * 3;
    if (this.pos + headSize + max > this.buf.length) this.room(headSize + max);
    const b = this.buf;
    const at = this.pos + headSize;
    let len: number;
    if (n < 0x40) {
      // Short strings by hand: cheaper than a call out, and lone surrogates
      // are written as their 3-byte form (as cbor-x does).
      let p = at;
      for (let i = 0; i < n; i++) {
        let c = s.charCodeAt(i);
        if (c < 0x80) b[p++] = c;
        else if (c < 0x800) {
          b[p++] = (c >> 6) | 0xc0;
          b[p++] = (c & 0x3f) | 0x80;
        } else if ((c & 0xfc00) === 0xd800 && (s.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
          c = 0x10000 + ((c & 0x3ff) << 10) + (s.charCodeAt(++i) & 0x3ff);
          b[p++] = (c >> 18) | 0xf0;
          b[p++] = ((c >> 12) & 0x3f) | 0x80;
          b[p++] = ((c >> 6) & 0x3f) | 0x80;
          b[p++] = (c & 0x3f) | 0x80;
        } else {
          b[p++] = (c >> 12) | 0xe0;
          b[p++] = ((c >> 6) & 0x3f) | 0x80;
          b[p++] = (c & 0x3f) | 0x80;
        }
      }
      len = p - at;
    } else {
      len = utf8.encodeInto(s, b.subarray(at, at + max)).written;
    }
    // The head was sized by UTF-16 length; the UTF-8 length may need a wider one.
    const need = len < 0x18 ? 1 : len < 0x100 ? 2 : len < 0x10000 ? 3 : 5;
    if (need !== headSize) b.copyWithin(this.pos + need, at, at + len);
    this.head(0x60, len);
    this.pos += len;
  }

  bytes(v: Uint8Array): void {
    const n = v.byteLength;
    this.room(5 + n);
    this.head(0x40, n);
    this.buf.set(v, this.pos);
    this.pos += n;
  }

  /** Opens a tag around an item at `depth` (tags count as a level, as the decoder counts them). */
  tag(tag: number, depth: number): void {
    this.deeper(depth);
    this.head(0xc0, tag);
  }

  /** Throws when a level opened at `depth` would be deeper than the decoder accepts. */
  deeper(depth: number): void {
    if (depth + 1 > this.depthMax) {
      throw new TypeError(`nested deeper than ${this.depthMax} levels`);
    }
  }

  object(v: object, depth: number): void {
    if (Array.isArray(v)) return this.array(v, depth);
    const ctor = v.constructor;
    if (ctor === Object || ctor === undefined) return this.plain(v, depth);
    if (v instanceof Uint8Array && ctor === Uint8Array) return this.bytes(v);
    if (v instanceof Map) {
      this.tag(259, depth);
      const n = v.size;
      if (n > 0) this.deeper(depth + 1);
      this.head(0xa0, n);
      for (const [key, val] of v) {
        this.value(key, depth + 2);
        this.value(val, depth + 2);
      }
      return;
    }
    if (v instanceof Date) {
      this.tag(1, depth);
      const seconds = v.getTime() / 1000;
      if (v.getMilliseconds() === 0 && seconds >= 0 && seconds < 0x100000000) {
        this.buf[this.pos++] = 0x1a;
        this.view.setUint32(this.pos, seconds);
        this.pos += 4;
      } else {
        this.buf[this.pos++] = 0xfb;
        this.view.setFloat64(this.pos, seconds);
        this.pos += 8;
      }
      return;
    }
    if (v instanceof Set) {
      this.tag(258, depth);
      return this.array(Array.from(v), depth + 1);
    }
    if (ArrayBuffer.isView(v)) {
      const bytes = new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
      if (v instanceof Uint8Array || v instanceof DataView) return this.bytes(bytes);
      this.tag(typedArrayTag(v), depth);
      return this.bytes(bytes);
    }
    if (v instanceof ArrayBuffer) return this.bytes(new Uint8Array(v));
    if (
      v instanceof Error || v instanceof RegExp || v instanceof Promise ||
      v instanceof WeakMap || v instanceof WeakSet
    ) {
      throw new TypeError(`a ${ctor?.name ?? "value"} cannot be encoded`);
    }
    if (Symbol.iterator in v) {
      throw new TypeError(`an iterable ${ctor?.name ?? "value"} cannot be encoded`);
    }
    return this.plain(v, depth);
  }

  array(v: unknown[], depth: number): void {
    const n = v.length;
    if (n > 0) this.deeper(depth);
    this.head(0x80, n);
    for (let i = 0; i < n; i++) this.value(v[i], depth + 1);
  }

  plain(v: object, depth: number): void {
    const keys = Object.keys(v);
    const n = keys.length;
    if (n > 0) this.deeper(depth);
    // A 2-byte count below 65,536 entries, as cbor-x writes objects.
    if (n < 0x10000) {
      this.buf[this.pos++] = 0xb9;
      this.buf[this.pos++] = n >> 8;
      this.buf[this.pos++] = n & 0xff;
    } else {
      this.buf[this.pos++] = 0xba;
      this.view.setUint32(this.pos, n);
      this.pos += 4;
    }
    const o = v as Record<string, unknown>;
    for (let i = 0; i < n; i++) {
      const k = keys[i]!;
      this.string(k);
      this.value(o[k], depth + 1);
    }
  }

  /** Encodes `v` after the previous output and returns a view of its bytes. */
  encode(v: unknown, depthMax: number, bigintBytesMax: number): Uint8Array {
    if (this.buf.length - this.pos < CHUNK_SLACK) {
      this.buf = new Uint8Array(CHUNK_BYTES);
      this.view = new DataView(this.buf.buffer);
      this.pos = 0;
    }
    this.start = this.pos;
    this.depthMax = depthMax;
    this.bigintBytesMax = bigintBytesMax;
    this.busy = true;
    try {
      this.value(v, 0);
    } catch (e) {
      this.pos = this.start;
      throw e;
    } finally {
      this.busy = false;
    }
    return this.buf.subarray(this.start, this.pos);
  }
}

const shared = new Writer();

/**
 * Encodes `value` as CBOR; throws a `TypeError` for what cannot be encoded
 * (see the module comment), nesting deeper than `depthMax` and bigints over
 * `bigintBytesMax` bytes.
 */
export function encodeCbor(value: unknown, depthMax: number, bigintBytesMax: number): Uint8Array {
  // A getter that encodes while its object is being encoded gets a writer of its own.
  const w = shared.busy ? new Writer() : shared;
  return w.encode(value, depthMax, bigintBytesMax);
}
