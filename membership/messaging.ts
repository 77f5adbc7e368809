/**
 * The types of messaging between nodes: endpoints, their handlers, and the
 * options of `send` and `call`.
 *
 * Delivery guarantees: a fire-and-forget `send` is at most once and FIFO per
 * connection; it never rejects for delivery reasons (an unknown or down node,
 * a closed connection, a queue past its hard bound): the message is dropped
 * and counted in `stats().sendDrops`. With `ack: true` a send is retransmitted
 * until acknowledged, delivered once, and its promise resolves on the
 * acknowledgement or rejects with a named error. Programming errors (bad
 * arguments, a value that cannot cross the wire) throw synchronously from
 * `send`.
 *
 * @module
 */

/**
 * Who sent a message and how. Frozen, and the same object for every message
 * that arrives on one connection: copy it to keep something of your own.
 */
export interface MessageContext {
  /** Name of the sending node. */
  readonly from: string;
  /** Channel it came on. */
  readonly channel: string;
}

/**
 * An endpoint: receives sends, and answers calls with its (awaited) return
 * value. Messages arrive as plain data (see `encodeForWire`).
 *
 * @example
 * ```ts
 * import type { Handler } from "@murmur/murmur/membership";
 * const echo: Handler = (msg, ctx) => ({ echoed: msg, from: ctx.from });
 * console.log(typeof echo);
 * ```
 */
export type Handler = (msg: unknown, ctx: MessageContext) => unknown;

/** Options of {@linkcode Node.send}. */
export interface SendOptions {
  /** Channel to send on (default `"default"`). */
  channel?: string;
  /** Picks the connection within the channel; same key, same order. Also the monotonic key. */
  partitionKey?: string | number;
  /** Retransmit until acknowledged; delivered once; resolves on the acknowledgement. */
  ack?: boolean;
  /** With `ack`: give up after this long, with `AckTimeoutError` (default the node's `ackTimeoutMs`; `Infinity`: never). */
  timeoutMs?: number;
  /** With `ack`: gives up (rejects with the signal's reason). */
  signal?: AbortSignal;
}

/** Options of {@linkcode Node.call}. */
export interface CallOptions {
  /** Give up after this long (default the node's `callTimeoutMs`; `Infinity`: never). */
  timeoutMs?: number;
  /** Channel to call on (default `"default"`). */
  channel?: string;
  /** Picks the connection within the channel. */
  partitionKey?: string | number;
  /** Gives up the call (rejects with the signal's reason). */
  signal?: AbortSignal;
}
