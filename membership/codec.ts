/**
 * The wire messages between nodes: CBOR (cbor-x) bodies of length-prefixed
 * frames. Every decoded value is checked for shape before use; anything else
 * is a {@linkcode ProtocolError} and closes the connection.
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
 * import { decodeValue, encodeValue } from "@murmur/murmur/membership";
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
 * import { decodeValue } from "@murmur/murmur/membership";
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

/** Message tags of the node protocol (after the handshake). */
export const Tag = {
  /** `[Tag.Msg, endpoint, payload]`: at-most-once delivery. */
  Msg: 1,
  /** `[Tag.AckMsg, seq, endpoint, payload]`: delivered once, answered by `Ack`. */
  AckMsg: 2,
  /** `[Tag.Ack, seq]` */
  Ack: 3,
  /** `[Tag.Call, id, endpoint, payload]` */
  Call: 4,
  /** `[Tag.Reply, id, status, value]`, status 0 ok, 1 no endpoint, 2 handler threw `[name, message]`. */
  Reply: 5,
  /** `[Tag.Ping, stamp]` */
  Ping: 6,
  /** `[Tag.Pong, stamp]` */
  Pong: 7,
  /** `[Tag.Gossip, entries]`: the sender's membership view. */
  Gossip: 8,
} as const;

/** A decoded node protocol message. */
export type WireMessage =
  | { tag: typeof Tag.Msg; endpoint: string; payload: unknown }
  | { tag: typeof Tag.AckMsg; seq: number; endpoint: string; payload: unknown }
  | { tag: typeof Tag.Ack; seq: number }
  | { tag: typeof Tag.Call; id: number; endpoint: string; payload: unknown }
  | { tag: typeof Tag.Reply; id: number; status: 0 | 1 | 2; value: unknown }
  | { tag: typeof Tag.Ping; stamp: number }
  | { tag: typeof Tag.Pong; stamp: number }
  | { tag: typeof Tag.Gossip; entries: unknown[] };

/** Endpoint names are short strings. */
export const ENDPOINT_NAME_BYTES_MAX = 256;

function isSeq(v: unknown): v is number {
  return typeof v === "number" && Number.isSafeInteger(v) && v >= 0;
}

function isEndpoint(v: unknown): v is string {
  return typeof v === "string" && v.length > 0 && v.length <= ENDPOINT_NAME_BYTES_MAX;
}

/**
 * Decodes and validates one node protocol frame.
 *
 * @example
 * ```ts
 * import { decodeMessage, encodeValue, Tag } from "@murmur/murmur/membership";
 * console.log(decodeMessage(encodeValue([Tag.Ping, 1]))); // { tag: 6, stamp: 1 }
 * ```
 */
export function decodeMessage(frame: Uint8Array): WireMessage {
  const v = decodeValue(frame);
  if (!Array.isArray(v) || v.length < 2) throw new ProtocolError("message is not a tagged array");
  const [tag, a, b, c] = v as unknown[];
  switch (tag) {
    case Tag.Msg:
      if (v.length === 3 && isEndpoint(a)) return { tag, endpoint: a, payload: b };
      break;
    case Tag.AckMsg:
      if (v.length === 4 && isSeq(a) && isEndpoint(b)) {
        return { tag, seq: a, endpoint: b, payload: c };
      }
      break;
    case Tag.Ack:
      if (v.length === 2 && isSeq(a)) return { tag, seq: a };
      break;
    case Tag.Call:
      if (v.length === 4 && isSeq(a) && isEndpoint(b)) {
        return { tag, id: a, endpoint: b, payload: c };
      }
      break;
    case Tag.Reply:
      if (v.length === 4 && isSeq(a) && (b === 0 || b === 1 || b === 2)) {
        return { tag, id: a, status: b, value: c };
      }
      break;
    case Tag.Ping:
    case Tag.Pong:
      if (v.length === 2 && typeof a === "number") return { tag, stamp: a };
      break;
    case Tag.Gossip:
      if (v.length === 2 && Array.isArray(a)) return { tag, entries: a };
      break;
  }
  throw new ProtocolError(`message of unknown tag or wrong shape (tag ${String(tag)})`);
}
