/**
 * Keys of the {@linkcode Storage} interface as bytes: an encoding whose byte
 * order is the key order (a tuple encoding in the style of FoundationDB's),
 * its decoding, and the form of versionstamps. For backend authors.
 *
 * @module
 */

import { type Key, type KeyPart, ORDER_STAMP_BYTES, OrderStamp, StorageError } from "./storage.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

function pushEscaped(out: number[], bytes: Uint8Array): void {
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i]!;
    out.push(b);
    if (b === 0) out.push(0xff);
  }
  out.push(0);
}

/**
 * A string part: ASCII directly, else through UTF-8 (the same bytes either way).
 * Keys are mostly short ASCII names, and TextEncoder's call costs more than the
 * loop for them.
 */
function pushString(out: number[], s: string): void {
  for (let i = 0; i < s.length; i++) {
    if (s.charCodeAt(i) >= 0x80) {
      pushEscaped(out, enc.encode(s));
      return;
    }
  }
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    out.push(c);
    if (c === 0) out.push(0xff);
  }
  out.push(0);
}

/** Scratch space for number parts (encodeKey is synchronous). */
const eight = new Uint8Array(8);
const eightView = new DataView(eight.buffer);

/**
 * Encodes a key into bytes whose byte order is the key order (a tuple encoding
 * in the style of FoundationDB's). Used by the memory and FoundationDB backends.
 *
 * @example
 * ```ts
 * import { encodeKey } from "@murmur/murmur/durable";
 * console.log(encodeKey(["a", 1]).length > 0); // true
 * ```
 */
export function encodeKey(key: Key): Uint8Array {
  if (!Array.isArray(key)) throw new TypeError("a key must be an array of parts");
  const out: number[] = [];
  for (const part of key) {
    if (part instanceof OrderStamp) {
      if (part.length !== ORDER_STAMP_BYTES) {
        throw new TypeError(`an OrderStamp has ${ORDER_STAMP_BYTES} bytes`);
      }
      out.push(0x33);
      for (let i = 0; i < part.length; i++) out.push(part[i]!);
    } else if (part instanceof Uint8Array) {
      out.push(0x01);
      pushEscaped(out, part);
    } else if (typeof part === "string") {
      out.push(0x02);
      pushString(out, part);
    } else if (typeof part === "number") {
      if (Number.isNaN(part)) throw new TypeError("NaN is not a valid key part");
      out.push(0x21);
      eightView.setFloat64(0, part);
      const flip = eight[0]! & 0x80 ? 0xff : 0;
      out.push(eight[0]! ^ (flip | 0x80));
      for (let i = 1; i < 8; i++) out.push(eight[i]! ^ flip);
    } else if (typeof part === "bigint") {
      if (part < -(2n ** 63n) || part >= 2n ** 63n) {
        throw new RangeError("bigint key parts must fit in 64 bits");
      }
      out.push(0x20);
      const b = new Uint8Array(8);
      new DataView(b.buffer).setBigUint64(0, BigInt.asUintN(64, part) ^ (1n << 63n));
      out.push(...b);
    } else if (typeof part === "boolean") {
      out.push(part ? 0x27 : 0x26);
    } else {
      throw new TypeError(`invalid key part of type ${typeof part}`);
    }
  }
  return Uint8Array.from(out);
}

/**
 * Decodes bytes made by {@linkcode encodeKey}.
 *
 * @example
 * ```ts
 * import { decodeKey, encodeKey } from "@murmur/murmur/durable";
 * console.log(decodeKey(encodeKey(["a", 1, true]))); // [ "a", 1, true ]
 * ```
 */
export function decodeKey(bytes: Uint8Array): KeyPart[] {
  const parts: KeyPart[] = [];
  let i = 0;
  const unescape = (): Uint8Array => {
    const out: number[] = [];
    for (;;) {
      if (i >= bytes.length) throw new StorageError("truncated key");
      const b = bytes[i++]!;
      if (b === 0) {
        if (bytes[i] === 0xff) {
          out.push(0);
          i++;
        } else return Uint8Array.from(out);
      } else out.push(b);
    }
  };
  while (i < bytes.length) {
    const tag = bytes[i++];
    if (tag === 0x01) parts.push(unescape());
    else if (tag === 0x02) parts.push(dec.decode(unescape()));
    else if (tag === 0x21) {
      const b = bytes.slice(i, i + 8);
      i += 8;
      if (b[0]! & 0x80) b[0] = b[0]! ^ 0x80;
      else for (let j = 0; j < 8; j++) b[j] = b[j]! ^ 0xff;
      parts.push(new DataView(b.buffer).getFloat64(0));
    } else if (tag === 0x20) {
      const v = new DataView(bytes.buffer, bytes.byteOffset + i, 8).getBigUint64(0) ^ (1n << 63n);
      i += 8;
      parts.push(BigInt.asIntN(64, v));
    } else if (tag === 0x33) {
      if (i + ORDER_STAMP_BYTES > bytes.length) throw new StorageError("truncated order stamp");
      parts.push(new OrderStamp(bytes.slice(i, i + ORDER_STAMP_BYTES)));
      i += ORDER_STAMP_BYTES;
    } else if (tag === 0x26) parts.push(false);
    else if (tag === 0x27) parts.push(true);
    else throw new StorageError(`unknown key tag ${tag}`);
  }
  return parts;
}

/**
 * Compares two byte strings (the order of encoded keys).
 *
 * @example
 * ```ts
 * import { compareBytes } from "@murmur/murmur/durable";
 * console.log(compareBytes(new Uint8Array([1]), new Uint8Array([1, 0]))); // -1
 * ```
 */
export function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i]! < b[i]! ? -1 : 1;
  return a.length === b.length ? 0 : a.length < b.length ? -1 : 1;
}

/**
 * Formats a commit number as a 20-hex-digit versionstamp (the memory backend's
 * and the shape of Deno KV's).
 *
 * @example
 * ```ts
 * import { versionstampOf } from "@murmur/murmur/durable";
 * console.log(versionstampOf(255n)); // 000000000000000000ff
 * ```
 */
export function versionstampOf(n: bigint): string {
  return n.toString(16).padStart(20, "0");
}
