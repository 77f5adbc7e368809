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
  /**
   * Channel to send on.
   *
   * @default `"default"`
   */
  channel?: string;
  /** Picks the connection within the channel; same key, same order. Also the monotonic key. */
  partitionKey?: string | number;
  /** Retransmit until acknowledged; delivered once; resolves on the acknowledgement. */
  ack?: boolean;
  /** With `ack`: give up after this long, with `AckTimeoutError` (default the node's `ackTimeoutMs`; `Infinity`: never). */
  timeoutMs?: number;
  /** With `ack`: gives up (rejects with the signal's reason). */
  signal?: AbortSignal;
  /**
   * Causal delivery (Partisan's `causal_label`): messages sent with the same
   * label are delivered in causal order on every node. If a node sends `m2`
   * with label `L` after it delivered (or sent) `m1` with label `L`, a node
   * that receives both delivers `m1` first, even when `m1` is delayed. A
   * message waits for its predecessors at most `causalWaitMs` (a node option)
   * and `causalBufferMax` messages per label; past that they are skipped as
   * lost. Use `ack: true` so that nothing is lost. A string of 1-256 characters.
   */
  causalLabel?: string;
  /**
   * Under HyParView, a send to a member that is not a neighbour travels hop
   * by hop through the overlay (Partisan's `transitive`) instead of over a new
   * direct connection; with `ack: true` it is acknowledged end to end. At most
   * `transitiveHopsMax` hops (a node option). Ignored under full mesh, and for
   * a neighbour (sent directly).
   */
  transitive?: boolean;
}

/** Options of {@linkcode Node.call}. */
export interface CallOptions {
  /** Give up after this long (default the node's `callTimeoutMs`; `Infinity`: never). */
  timeoutMs?: number;
  /**
   * Channel to call on.
   *
   * @default `"default"`
   */
  channel?: string;
  /** Picks the connection within the channel. */
  partitionKey?: string | number;
  /** Gives up the call (rejects with the signal's reason). */
  signal?: AbortSignal;
  /**
   * Under HyParView, a call to a member that is not a neighbour travels hop by
   * hop through the overlay and its reply comes back the same way (see
   * `SendOptions.transitive`).
   */
  transitive?: boolean;
}
