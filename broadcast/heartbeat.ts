/**
 * Periodic heartbeats through Plumtree (Partisan's `partisan_plumtree_backend`):
 * each node broadcasts `{ node, epoch, counter }`; every node keeps the newest
 * per origin. Heartbeats keep the broadcast trees exercised and tell when each
 * node was last heard of. No anti-entropy: the next heartbeat repairs.
 *
 * @module
 */

import { type Clock, systemClock, type TimerId } from "../membership/clock.ts";
import type { BroadcastHandler, GraftResult } from "./handler.ts";
import type { Plumtree } from "./plumtree.ts";

/** One heartbeat. */
export interface Heartbeat {
  /** The node that sent it. */
  node: string;
  /** The sender's run (its start time); a restart begins a new epoch. */
  epoch: number;
  /** Grows by one per heartbeat within an epoch. */
  counter: number;
}

/** The id of a heartbeat: `[node, epoch, counter]`. */
export type HeartbeatId = [string, number, number];

/** Options of {@linkcode HeartbeatHandler}. */
export interface HeartbeatOptions {
  /** Handler name (default `"heartbeat"`). */
  name?: string;
  /** Channel (default: Plumtree's). */
  channel?: string;
  /** Period of this node's heartbeats (default 1000 ms). */
  intervalMs?: number;
  /** Timers and `lastHeard` times (default the system clock). */
  clock?: Clock;
}

function newer(a: HeartbeatId, b: HeartbeatId): boolean {
  return a[1] !== b[1] ? a[1] > b[1] : a[2] > b[2];
}

/**
 * The heartbeat handler.
 *
 * @example
 * ```ts
 * import { HeartbeatHandler } from "@murmur/murmur/broadcast";
 * const hb = new HeartbeatHandler("a");
 * console.log(hb.merge(["b", 1, 1], null), hb.isStale(["b", 1, 0])); // true true
 * ```
 */
export class HeartbeatHandler implements BroadcastHandler<Heartbeat, HeartbeatId, null> {
  readonly name: string;
  readonly channel?: string;
  readonly #self: string;
  readonly #clock: Clock;
  readonly #intervalMs: number;
  readonly #epoch: number;
  #counter = 0;
  readonly #latest = new Map<string, HeartbeatId>();
  readonly #heardAt = new Map<string, number>();
  #timer: TimerId | undefined;

  /** Creates the handler of node `self`. */
  constructor(self: string, options: HeartbeatOptions = {}) {
    this.#self = self;
    this.name = options.name ?? "heartbeat";
    if (options.channel !== undefined) this.channel = options.channel;
    this.#clock = options.clock ?? systemClock;
    this.#intervalMs = options.intervalMs ?? 1000;
    if (!(this.#intervalMs > 0)) {
      throw new RangeError(`intervalMs must be > 0, got ${this.#intervalMs}`);
    }
    this.#epoch = Math.floor(this.#clock.now());
  }

  /** Starts broadcasting this node's heartbeats through `plumtree`. Returns a stop function. */
  run(plumtree: Plumtree): () => void {
    const beat = () => {
      this.#timer = this.#clock.setTimeout(beat, this.#intervalMs);
      plumtree.broadcast(
        { node: this.#self, epoch: this.#epoch, counter: ++this.#counter },
        this.name,
      ).catch(
        () => {},
      );
    };
    this.#timer = this.#clock.setTimeout(beat, 0);
    return () => {
      if (this.#timer !== undefined) this.#clock.clearTimeout(this.#timer);
      this.#timer = undefined;
    };
  }

  /** When (clock time) a heartbeat of `node` was last merged here. */
  lastHeard(node: string): number | undefined {
    return this.#heardAt.get(node);
  }

  /** The newest heartbeat known of `node`. */
  latest(node: string): Heartbeat | undefined {
    const id = this.#latest.get(node);
    return id === undefined ? undefined : { node: id[0], epoch: id[1], counter: id[2] };
  }

  /** id = payload = the heartbeat's stamp. */
  broadcastData(hb: Heartbeat): { id: HeartbeatId; payload: null } {
    return { id: [hb.node, hb.epoch, hb.counter], payload: null };
  }

  /** Keeps the newest heartbeat per origin. */
  merge(id: HeartbeatId, _payload: null): boolean {
    if (!Array.isArray(id) || id.length !== 3) return false;
    const cur = this.#latest.get(id[0]);
    if (cur !== undefined && !newer(id, cur)) return false;
    this.#latest.set(id[0], id);
    this.#heardAt.set(id[0], this.#clock.now());
    return true;
  }

  /** Stale when this heartbeat or a newer one of the same origin is known. */
  isStale(id: HeartbeatId): boolean {
    const cur = this.#latest.get(id[0]);
    return cur !== undefined && !newer(id, cur);
  }

  /** The heartbeat if it is the newest known; stale if a newer one is. */
  graft(id: HeartbeatId): GraftResult<null> {
    const cur = this.#latest.get(id[0]);
    if (cur === undefined || newer(id, cur)) return { error: "unknown heartbeat" };
    return cur[1] === id[1] && cur[2] === id[2] ? { ok: null } : "stale";
  }

  /** Heartbeats need no anti-entropy: the next one repairs. */
  exchange(): "ignore" {
    return "ignore";
  }
}
