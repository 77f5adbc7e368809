/**
 * The value codec of every murmur message, payload and stored state: CBOR
 * (RFC 8949), written and read by murmur's own encoder and decoder (no npm
 * package, so a node process loads no Node compatibility layer for it).
 *
 * The bytes are those cbor-x 1.6 writes with the settings murmur used before
 * (no records, maps as objects, `Uint8Array` untagged), so older nodes and
 * stored state read and are read unchanged.
 *
 * Decoding is bounded in time as well as size, in one pass: it refuses tags
 * other than those murmur's encoder emits (dates, big integers, typed arrays,
 * sets, maps), big integers over {@linkcode BIGINT_BYTES_MAX} bytes, nesting
 * deeper than {@linkcode DECODE_DEPTH_MAX}, indefinite lengths, lengths the
 * frame cannot hold and trailing bytes. What crosses the wire is plain data:
 * class instances arrive as plain objects (own enumerable properties), `Map`,
 * `Set`, `Date`, typed arrays and bigints keep their types, 64-bit integers
 * written as such arrive as bigints, byte strings arrive as views of the
 * received frame; functions, symbols, cycles, `Error`, `RegExp`, `Promise`
 * and iterables other than arrays, maps and sets are refused where they are
 * encoded ({@linkcode encodeForWire}), and so is what a receiver would refuse.
 *
 * @module
 */

import { ProtocolError } from "./errors.ts";
import { encodeCbor } from "./_cbor_encode.ts";
import { decodeCbor } from "./_cbor_decode.ts";
import { findUnsendable } from "./_value_path.ts";

/** Deepest nesting of arrays, maps and tags a decoded value may have. */
export const DECODE_DEPTH_MAX = 100;
/** Largest big integer (CBOR tags 2 and 3) accepted, in bytes (1024 bits). */
export const BIGINT_BYTES_MAX = 128;

/**
 * Encodes any CBOR-representable value (the codec of every murmur message and
 * payload).
 *
 * @example
 * ```ts
 * import { decodeValue, encodeValue } from "@murmur/murmur/protocol";
 * console.log(decodeValue(encodeValue({ a: [1, "x"] }))); // { a: [ 1, "x" ] }
 * ```
 */
export function encodeValue(value: unknown): Uint8Array {
  return encodeForWire(value);
}

/**
 * Encodes a value that is about to cross the wire, or throws a `TypeError`
 * that names the path of the part that cannot: `msg.items[3].callback is a
 * function`. Refused: functions, symbols, cycles, `Error`, `RegExp`,
 * `Promise`, iterables other than arrays, maps and sets, big integers over
 * {@linkcode BIGINT_BYTES_MAX} bytes, and nesting deeper than
 * {@linkcode DECODE_DEPTH_MAX} (what a receiver would refuse). The checks that
 * name the path run only when encoding fails, so a good value costs one encode.
 *
 * @param value The value.
 * @param rootName How the value is named in the error (`"msg"`).
 * @param context What was being done, prefixed to the error (`cannot send to endpoint "jobs"`).
 * @example
 * ```ts
 * import { encodeForWire } from "@murmur/murmur/membership";
 * try {
 *   encodeForWire({ items: [{ callback() {} }] }, "msg", "cannot send");
 * } catch (e) {
 *   console.log((e as Error).message); // cannot send: msg.items[0].callback is a function
 * }
 * ```
 */
export function encodeForWire(value: unknown, rootName = "value", context?: string): Uint8Array {
  try {
    return encodeCbor(value, DECODE_DEPTH_MAX, BIGINT_BYTES_MAX);
  } catch (e) {
    const why = e instanceof RangeError ? "too deep for the stack" : (e as Error).message;
    const where = findUnsendable(value, rootName, DECODE_DEPTH_MAX - 1, BIGINT_BYTES_MAX) ??
      `${rootName} cannot be encoded (${why})`;
    throw new TypeError(context === undefined ? where : `${context}: ${where}`);
  }
}

/**
 * Throws the `TypeError` of {@linkcode encodeForWire} when `value` cannot cross
 * the wire; returns its encoded size otherwise. For checking a value before a
 * local change that will later be sent.
 *
 * @example
 * ```ts
 * import { checkSendable } from "@murmur/murmur/membership";
 * console.log(checkSendable({ ok: [1, 2] }, "meta") > 0); // true
 * ```
 */
export function checkSendable(value: unknown, rootName = "value", context?: string): number {
  return encodeForWire(value, rootName, context).length;
}

/**
 * Decodes one CBOR value; throws {@linkcode ProtocolError} on malformed input
 * and on input outside the decoding bounds (see the module documentation).
 *
 * @example
 * ```ts
 * import { decodeValue } from "@murmur/murmur/protocol";
 * try { decodeValue(new Uint8Array([0xff])); } catch (e) { console.log((e as Error).name); }
 * ```
 */
export function decodeValue(bytes: Uint8Array): unknown {
  try {
    return decodeCbor(bytes, DECODE_DEPTH_MAX, BIGINT_BYTES_MAX);
  } catch (e) {
    throw new ProtocolError(`refused CBOR: ${(e as Error).message}`, { cause: e });
  }
}
