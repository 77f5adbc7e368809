/**
 * The contract between Plumtree and what it broadcasts.
 *
 * @module
 */

/** What `graft` answers. */
export type GraftResult<P> = { ok: P } | "stale" | { error: unknown };

/**
 * A broadcast handler: the same `name` on every node. Plumtree calls it to
 * split a message into an id and a payload, to store what arrives, to tell
 * whether an announced id is worth fetching, to hand a payload to a peer that
 * grafts, and for anti-entropy with one peer.
 *
 * Semantics:
 * - `merge(id, payload)` returns true when the message is new here. Returning
 *   true obliges the handler to have stored it, so that a later `graft(id)`
 *   can answer `{ ok: payload }` (or `"stale"` once something newer replaced it).
 *   Plumtree delivers on only when merge returns true: that is the "exactly
 *   once to the application" guarantee.
 * - `isStale(id)` is true when this node has the message or something newer:
 *   an announcement (IHAVE) of it needs no graft.
 * - `graft(id)` may answer `"stale"` when it holds something newer than `id`
 *   (the grafting node will get the newer one anyway) and `{ error }` when it
 *   does not hold it at all.
 * - `exchange(peer, signal)` repairs what either side missed (anti-entropy) or
 *   answers `"ignore"`; it runs every `exchangeTickMs` with one random peer and
 *   should stop when `signal` aborts.
 *
 * @example A handler that keeps every message
 * ```ts
 * import type { BroadcastHandler } from "@murmur/murmur/broadcast";
 * const seen = new Map<string, string>();
 * const log: BroadcastHandler<{ id: string; text: string }, string, string> = {
 *   name: "log",
 *   broadcastData: (m) => ({ id: m.id, payload: m.text }),
 *   merge: (id, text) => (seen.has(id) ? false : (seen.set(id, text), true)),
 *   isStale: (id) => seen.has(id),
 *   graft: (id) => (seen.has(id) ? { ok: seen.get(id)! } : { error: "unknown" }),
 *   exchange: () => "ignore",
 * };
 * console.log(log.name);
 * ```
 */
export interface BroadcastHandler<M = unknown, Id = unknown, P = unknown> {
  /** The handler's name, the same on every node. */
  readonly name: string;
  /** The channel Plumtree sends this handler's messages on (default: `"broadcast"` if the node has it, else `"default"`). */
  readonly channel?: string;
  /** Splits a message into its id and payload. */
  broadcastData(msg: M): { id: Id; payload: P };
  /** Stores a message; true when it was new here. */
  merge(id: Id, payload: P): boolean | Promise<boolean>;
  /** True when this node has `id` or something newer. */
  isStale(id: Id): boolean | Promise<boolean>;
  /** The payload of `id` for a peer that grafts. */
  graft(id: Id): GraftResult<P> | Promise<GraftResult<P>>;
  /** Anti-entropy with one peer, or `"ignore"`. */
  exchange(peer: string, signal: AbortSignal): "ignore" | Promise<void>;
}
