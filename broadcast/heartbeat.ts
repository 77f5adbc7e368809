/**
 * Periodic heartbeats through Plumtree (Partisan's `partisan_plumtree_backend`):
 * each node broadcasts `{ node, epoch, counter, timestamp }` every
 * `intervalMs` (default 10000 ms, the seed's `broadcast_heartbeat_interval`),
 * starting when the Plumtree server starts; every node keeps the newest per
 * origin. Heartbeats keep the broadcast trees exercised and tell when each
 * node was last heard of. No anti-entropy: the next heartbeat repairs.
 *
 * @module
 */

import { type Clock, systemClock, type TimerId } from "../membership/clock.ts";
import type { BroadcastHandler, BroadcastServer, GraftResult } from "./handler.ts";

/** One heartbeat. */
export interface Heartbeat {
  /** The node that sent it. */
  node: string;
  /** The sender's run (its start time, wall clock); a restart begins a new epoch. */
  epoch: number;
  /** Grows by one per heartbeat within an epoch. */
  counter: number;
  /** When it was sent (the sender's wall clock, ms since the epoch). */
  timestamp: number;
}

/** The id of a heartbeat: `[node, epoch, counter]`. */
export type HeartbeatId = [string, number, number];

/** Options of {@linkcode HeartbeatHandler}. */
export interface HeartbeatOptions {
  /** Handler name (default `"heartbeat"`). */
  name?: string;
  /** Channel (default: Plumtree's). */
  channel?: string;
  /** Period of this node's heartbeats (default 10000 ms, as in the seed). */
  intervalMs?: number;
  /** Start beating when the Plumtree server starts (default true; else call `run`). */
  autoStart?: boolean;
  /** Timers, `lastHeard` times and timestamps (default the system clock). */
  clock?: Clock;
}

/** The seed's default heartbeat interval. */
export const DEFAULT_HEARTBEAT_INTERVAL_MS = 10_000;

function newer(a: HeartbeatId, b: HeartbeatId): boolean {
  return a[1] !== b[1] ? a[1] > b[1] : a[2] > b[2];
}

function isHeartbeat(v: unknown): v is Heartbeat {
  const h = v as Heartbeat | null;
  return typeof h === "object" && h !== null && typeof h.node === "string" &&
    typeof h.epoch === "number" && typeof h.counter === "number" &&
    typeof h.timestamp === "number";
}

/**
 * The heartbeat handler.
 *
 * @example
 * ```ts
 * import { HeartbeatHandler } from "@murmur/murmur/broadcast";
 * const hb = new HeartbeatHandler("a");
 * const beat = { node: "b", epoch: 1, counter: 1, timestamp: Date.now() };
 * console.log(hb.merge(["b", 1, 1], beat), hb.isStale(["b", 1, 0])); // true true
 * ```
 */
export class HeartbeatHandler implements BroadcastHandler<Heartbeat, HeartbeatId, Heartbeat> {
  readonly name: string;
  readonly channel?: string;
  readonly #self: string;
  readonly #clock: Clock;
  readonly #intervalMs: number;
  readonly #autoStart: boolean;
  readonly #epoch: number;
  #counter = 0;
  readonly #latest = new Map<string, Heartbeat>();
  readonly #heardAt = new Map<string, number>();
  #timer: TimerId | undefined;
  #running: BroadcastServer | undefined;

  /** Creates the handler of node `self`. */
  constructor(self: string, options: HeartbeatOptions = {}) {
    if (typeof self !== "string" || self.length === 0) {
      throw new TypeError("self must be this node's name");
    }
    this.#self = self;
    this.name = options.name ?? "heartbeat";
    if (options.channel !== undefined) this.channel = options.channel;
    this.#clock = options.clock ?? systemClock;
    this.#intervalMs = options.intervalMs ?? DEFAULT_HEARTBEAT_INTERVAL_MS;
    if (!(this.#intervalMs > 0) || !Number.isFinite(this.#intervalMs)) {
      throw new RangeError(`intervalMs must be a finite number > 0, got ${this.#intervalMs}`);
    }
    this.#autoStart = options.autoStart ?? true;
    this.#epoch = Math.floor(this.#clock.wallNow());
  }

  /** The period of this node's heartbeats. */
  get intervalMs(): number {
    return this.#intervalMs;
  }

  /** Called by the Plumtree server when it starts: beats unless `autoStart` is false. */
  start(plumtree: BroadcastServer): void {
    if (this.#autoStart) this.run(plumtree);
  }

  /** Called by the Plumtree server when it closes. */
  stop(): void {
    if (this.#timer !== undefined) this.#clock.clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#running = undefined;
  }

  /**
   * Starts broadcasting this node's heartbeats through `plumtree` (the server
   * does it by itself unless `autoStart` is false). Returns a stop function.
   * Idempotent for the same server.
   */
  run(plumtree: BroadcastServer): () => void {
    if (this.#running !== plumtree) {
      this.stop();
      this.#running = plumtree;
      const beat = () => {
        this.#timer = this.#clock.setTimeout(beat, this.#intervalMs);
        const hb: Heartbeat = {
          node: this.#self,
          epoch: this.#epoch,
          counter: ++this.#counter,
          timestamp: this.#clock.wallNow(),
        };
        plumtree.broadcast(hb, this.name).catch(() => {});
      };
      this.#timer = this.#clock.setTimeout(beat, 0);
    }
    return () => {
      if (this.#running === plumtree) this.stop();
    };
  }

  /** When (this node's monotonic clock) a heartbeat of `node` was last merged here. */
  lastHeard(node: string): number | undefined {
    return this.#heardAt.get(node);
  }

  /** The newest heartbeat known of `node`. */
  latest(node: string): Heartbeat | undefined {
    const hb = this.#latest.get(node);
    return hb === undefined ? undefined : { ...hb };
  }

  /** The id is `[node, epoch, counter]`, the payload the heartbeat itself. */
  broadcastData(hb: Heartbeat): { id: HeartbeatId; payload: Heartbeat } {
    return { id: [hb.node, hb.epoch, hb.counter], payload: hb };
  }

  /** Keeps the newest heartbeat per origin. */
  merge(id: HeartbeatId, payload: Heartbeat): boolean {
    if (!Array.isArray(id) || id.length !== 3 || !isHeartbeat(payload)) return false;
    const cur = this.#latest.get(id[0]);
    if (cur !== undefined && !newer(id, [cur.node, cur.epoch, cur.counter])) return false;
    this.#latest.set(id[0], {
      node: id[0],
      epoch: id[1],
      counter: id[2],
      timestamp: payload.timestamp,
    });
    this.#heardAt.set(id[0], this.#clock.now());
    return true;
  }

  /** Stale when this heartbeat or a newer one of the same origin is known. */
  isStale(id: HeartbeatId): boolean {
    const cur = this.#latest.get(id[0]);
    return cur !== undefined && !newer(id, [cur.node, cur.epoch, cur.counter]);
  }

  /** The heartbeat if it is the newest known; stale if a newer one is. */
  graft(id: HeartbeatId): GraftResult<Heartbeat> {
    const cur = this.#latest.get(id[0]);
    if (cur === undefined || newer(id, [cur.node, cur.epoch, cur.counter])) {
      return { error: "unknown heartbeat" };
    }
    return cur.epoch === id[1] && cur.counter === id[2] ? { ok: { ...cur } } : "stale";
  }

  /** Heartbeats need no anti-entropy: the next one repairs. */
  exchange(): "ignore" {
    return "ignore";
  }
}
