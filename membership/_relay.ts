// What murmur's own relays (Plumtree) need from a Node and nothing in the public
// API offers: the bytes a message arrived in, and a send of bytes already
// encoded. Module-private: mod.ts does not export it.
//
// A relay forwards a message with one field changed (Plumtree's round). Encoding
// it again at every hop was the largest single cost of a relayed delivery;
// forwarding the received frame, patched in place, costs a copy into the write
// buffer and nothing else.

import type { MessageContext } from "./messaging.ts";
import type { Node } from "./node.ts";

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
}

let relayOfNode: ((node: Node) => Relay) | undefined;

/** Called once, by `Node`'s static initializer. */
export function provideRelay(fn: (node: Node) => Relay): void {
  relayOfNode = fn;
}

/** The relay operations of `node`. */
export function relayOf(node: Node): Relay {
  if (relayOfNode === undefined) throw new Error("murmur: Node is not loaded");
  return relayOfNode(node);
}
