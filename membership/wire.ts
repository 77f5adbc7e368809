/**
 * The node wire: the messages between nodes after the handshake, each the CBOR
 * body (see `base/codec.ts`) of a length-prefixed frame. Every decoded value is
 * checked for shape before use; anything else is a {@linkcode ProtocolError}
 * and closes the connection.
 *
 * @module
 */

import { ProtocolError } from "../base/errors.ts";
import { decodeValue } from "../base/codec.ts";

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
 * import { decodeMessage, encodeValue, Tag } from "@murmur/murmur/protocol";
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
