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
 * Broadcasting (the seed's `broadcast/2`): `plumtree.broadcast(msg, name)`
 * always spreads what `broadcastData(msg)` returns. It also calls the local
 * `merge(id, payload)`, so that a handler that stores in `merge` has the
 * message here too, but merge's answer never decides whether the message
 * spreads. Both habits work:
 * - **store in `merge`**: `broadcastData` only splits; the local `merge` stores
 *   (and answers true);
 * - **store first** (riak_core's habit): `broadcastData` (or the caller, before
 *   broadcasting) stores; the local `merge` then answers false, and the message
 *   spreads all the same.
 *
 * Semantics of the other callbacks:
 * - `merge(id, payload)` returns true when the message is new here. Returning
 *   true obliges the handler to have stored it, so that a later `graft(id)`
 *   can answer `{ ok: payload }` (or `"stale"` once something newer replaced it).
 *   For messages from peers, Plumtree delivers on (pushes along the tree) only
 *   when merge returns true: each message reaches the application once per node.
 * - `isStale(id)` is true when this node has the message or something newer:
 *   an announcement (IHAVE) of it needs no graft.
 * - `graft(id)` may answer `"stale"` when it holds something newer than `id`
 *   (the grafting node will get the newer one anyway) and `{ error }` when it
 *   does not hold it at all.
 * - `exchange(peer, signal)` repairs what either side missed (anti-entropy) or
 *   answers `"ignore"`; it runs every `exchangeTickMs` with one random peer,
 *   and at once with each peer that comes up (a restart, a healed partition),
 *   and should stop when `signal` aborts.
 * - `start(plumtree)` and `stop()`, when present, are called when the Plumtree
 *   server starts and closes (a heartbeat handler schedules its beats there).
 *
 * Payloads and ids cross the wire as plain data (see `encodeForWire`); a
 * broadcast whose id or payload cannot is refused with a `TypeError` before
 * anything is stored or sent.
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
  /** Splits a message into its id and payload (and may store it: see above). */
  broadcastData(msg: M): { id: Id; payload: P };
  /** Stores a message; true when it was new here. */
  merge(id: Id, payload: P): boolean | Promise<boolean>;
  /** True when this node has `id` or something newer. */
  isStale(id: Id): boolean | Promise<boolean>;
  /** The payload of `id` for a peer that grafts. */
  graft(id: Id): GraftResult<P> | Promise<GraftResult<P>>;
  /** Anti-entropy with one peer, or `"ignore"`. */
  exchange(peer: string, signal: AbortSignal): "ignore" | Promise<void>;
  /** Called once when the Plumtree server starts, with the server. */
  start?(plumtree: BroadcastServer): void;
  /** Called once when the Plumtree server closes. */
  stop?(): void;
}

/**
 * What a handler's `start` gets: the server it runs in.
 *
 * @example
 * ```ts
 * import type { BroadcastServer } from "@murmur/murmur/broadcast";
 * const beat = (s: BroadcastServer) => s.broadcast({ at: 1 }, "heartbeat");
 * console.log(typeof beat);
 * ```
 */
export interface BroadcastServer {
  /** Broadcasts `msg` through the handler named `handlerName`. */
  broadcast(msg: unknown, handlerName: string): Promise<void>;
}
