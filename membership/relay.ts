/**
 * The door between a {@linkcode Node} and murmur's own relays (Plumtree):
 * what a relay needs from a node and the public API does not offer, the bytes
 * a message arrived in and a send of bytes already encoded. Public to the
 * package (Plumtree uses it), not part of the user's API: `mod.ts` does not
 * export it.
 *
 * A relay forwards a message with one field changed (Plumtree's round).
 * Encoding it again at every hop was the largest single cost of a relayed
 * delivery; forwarding the received frame, patched in place, costs a copy into
 * the write buffer and nothing else.
 *
 * @module
 */

import type { MessageContext } from "./messaging.ts";

/**
 * A handler that also receives the frame its message came in, as the bytes of
 * `[Tag.Msg, endpoint, msg]` (undefined for a message from this node). The
 * frame is the receiver's own copy: decoded byte strings of `msg` are views of
 * it, so it may be changed only outside them.
 */
export type RelayHandler = (msg: unknown, ctx: MessageContext, frame?: Uint8Array) => unknown;

/** A node's relay operations. */
export interface Relay {
  /** Registers a handler that receives frames (see {@linkcode RelayHandler}). */
  register(endpoint: string, handler: RelayHandler): () => void;
  /**
   * `Node.sendMany` without a promise per call: `failed` is called once per
   * destination that cannot be sent to (now, or later for a send that waited
   * for room). `frame`, when given, is `msg` already encoded and is sent as it
   * is (`msg` is then encoded only if `frame` is over the node's frame limit).
   * Throws a `TypeError` when `msg` cannot be sent (it names the path).
   */
  sendMany(
    to: readonly string[],
    endpoint: string,
    msg: unknown,
    frame: Uint8Array | undefined,
    channel: string | undefined,
    failed: () => void,
  ): void;
  /**
   * Runs `fn` when the node leaves the cluster (`leave()`), before it tells
   * its neighbours; `leave()` waits for it, at most `connectTimeoutMs`.
   * Returns a function that removes it.
   */
  beforeLeave(fn: () => Promise<void>): () => void;
  /** The node's `frameBytesMax`: the largest frame it sends or accepts. */
  readonly frameBytesMax: number;
}

/** Each node's relay, registered by the node itself when it starts. */
const relays = new WeakMap<object, Relay>();

/** Called by a `Node` when it starts: its relay operations. */
export function provideRelay(node: object, relay: Relay): void {
  relays.set(node, relay);
}

/**
 * The relay operations of `node`.
 *
 * @throws {TypeError} `node` is not a started murmur `Node`.
 */
export function relayOf(node: object): Relay {
  const r = relays.get(node);
  if (r === undefined) throw new TypeError("not a murmur Node (relayOf takes a started Node)");
  return r;
}
