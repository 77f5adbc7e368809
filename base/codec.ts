/**
 * The value codec of every murmur message, payload and stored state: CBOR
 * (cbor-x), checked on the way in and on the way out.
 *
 * Decoding is bounded in time as well as size: before cbor-x sees a frame, a
 * linear scan refuses tags other than those murmur's encoder emits (dates, big
 * integers, typed arrays, sets, maps), big integers over
 * {@linkcode BIGINT_BYTES_MAX} bytes, nesting deeper than
 * {@linkcode DECODE_DEPTH_MAX}, and lengths the frame cannot hold. What crosses
 * the wire is plain data: class instances arrive as plain objects (own
 * enumerable properties), `Map`, `Set`, `Date`, typed arrays and bigints keep
 * their types; functions, symbols, cycles, `Error` and `RegExp` values are
 * refused where they are sent ({@linkcode encodeForWire}). A `Promise` has no
 * own properties and arrives as `{}`: await it before sending.
 *
 * @module
 */

// The subpath entries are cbor-x's plain JavaScript build: no native addon and no
// environment lookup at load, so users need no --allow-env.
import { Encoder } from "cbor-x/encode";
import { Decoder } from "cbor-x/decode";
import { ProtocolError } from "./errors.ts";
import { scanCbor } from "./_cbor_scan.ts";
import { findUnsendable } from "./_value_path.ts";

/** Deepest nesting of arrays, maps and tags a decoded value may have. */
export const DECODE_DEPTH_MAX = 100;
/** Largest big integer (CBOR tags 2 and 3) accepted, in bytes (1024 bits). */
export const BIGINT_BYTES_MAX = 128;

const encoder = new Encoder({ useRecords: false, mapsAsObjects: true, tagUint8Array: false });
const decoder = new Decoder({ useRecords: false, mapsAsObjects: true });

/**
 * One encode as a plain `Uint8Array` view of cbor-x's output buffer. cbor-x
 * returns a Node `Buffer` view where Node's `Buffer` exists (Deno gives npm
 * packages one), and making that view costs more than the encode of a small
 * message; in REUSE_BUFFER_MODE it hands back its buffer with the bounds
 * instead. Later encodes continue after these bytes, so the view stays valid.
 */
function encodeView(value: unknown): Uint8Array {
  const t = encodeReusing(value, REUSE_BUFFER_MODE);
  return new Uint8Array(t.buffer, t.byteOffset + t.start, t.end - t.start);
}
/** cbor-x's `REUSE_BUFFER_MODE` (exported by its encode.js, absent from its typings). */
const REUSE_BUFFER_MODE = 512;
const encodeReusing = encoder.encode.bind(encoder) as unknown as (
  value: unknown,
  mode: number,
) => Uint8Array & { start: number; end: number };

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
  return encodeView(value);
}

/**
 * Encodes a value that is about to cross the wire, or throws a `TypeError`
 * that names the path of the part that cannot: `msg.items[3].callback is a
 * function`. Refused: functions, symbols, cycles, `Error`, `RegExp`,
 * big integers over {@linkcode BIGINT_BYTES_MAX} bytes, and nesting deeper than
 * {@linkcode DECODE_DEPTH_MAX} (what a receiver would refuse). The checks that
 * name the path run only when encoding fails, so a good value costs one encode
 * and one linear scan.
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
  let bytes: Uint8Array | undefined;
  let why: string | undefined;
  try {
    bytes = encodeView(value);
    why = scanCbor(bytes, DECODE_DEPTH_MAX, BIGINT_BYTES_MAX);
  } catch (e) {
    why = (e as Error).message;
  }
  if (why === undefined) return bytes!;
  const where = findUnsendable(value, rootName, DECODE_DEPTH_MAX - 1, BIGINT_BYTES_MAX) ??
    `${rootName} cannot be encoded (${why})`;
  throw new TypeError(context === undefined ? where : `${context}: ${where}`);
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
  const why = scanCbor(bytes, DECODE_DEPTH_MAX, BIGINT_BYTES_MAX);
  if (why !== undefined) throw new ProtocolError(`refused CBOR: ${why}`);
  try {
    return decoder.decode(bytes);
  } catch (e) {
    throw new ProtocolError(`malformed CBOR: ${(e as Error).message}`, { cause: e });
  }
}
