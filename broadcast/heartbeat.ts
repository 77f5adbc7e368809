/**
 * Periodic heartbeats through Plumtree (Partisan's `partisan_plumtree_backend`):
 * each node broadcasts `{ node, epoch, counter, timestamp }` every
 * `intervalMs` (default 10000 ms, the seed's `broadcast_heartbeat_interval`),
 * starting when the Plumtree server starts. As the seed's backend, a
 * heartbeat this node has not seen is new (merged and delivered on), also a
 * late one older than the newest known: each node keeps, per origin, the
 * heartbeats of the current epoch within the last `historyMax` counters (and
 * answers grafts of them), and the newest one. Heartbeats keep the broadcast
 * trees exercised and tell when each node was last heard of. No anti-entropy:
 * the next heartbeat repairs.
 *
 * @module
 */

import { type Clock, systemClock, type TimerId } from "../base/clock.ts";
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
  /**
   * Handler name.
   *
   * @default `"heartbeat"`
   */
  name?: string;
  /** Channel (default: Plumtree's). */
  channel?: string;
  /**
   * Period of this node's heartbeats, as in the seed.
   *
   * @default 10000
   */
  intervalMs?: number;
  /**
   * Start beating when the Plumtree server starts (else call `run`).
   *
   * @default true
   */
  autoStart?: boolean;
  /** Timers, `lastHeard` times and timestamps (default the system clock). */
  clock?: Clock;
  /**
   * Heartbeats kept per origin, by counter below the newest (default 64: about
   * ten minutes at the default interval). An older one is stale: it cannot be
   * told from one seen and forgotten.
   */
  historyMax?: number;
  /**
   * Origins remembered; past it the least recently heard is forgotten.
   *
   * @default 4096
   */
  originsMax?: number;
}

/** What this node keeps of one origin: its current epoch's heartbeats within the window. */
interface Origin {
  epoch: number;
  /** The newest counter seen. */
  top: number;
  /** Heartbeats seen, by counter, from `top - historyMax + 1` to `top`. */
  kept: Map<number, Heartbeat>;
}

/** The seed's default heartbeat interval. */
export const DEFAULT_HEARTBEAT_INTERVAL_MS = 10_000;

function isId(v: unknown): v is HeartbeatId {
  return Array.isArray(v) && v.length === 3 && typeof v[0] === "string" &&
    typeof v[1] === "number" && Number.isSafeInteger(v[2]);
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
 * console.log(hb.merge(["b", 1, 1], beat), hb.isStale(["b", 1, 1]), hb.isStale(["b", 1, 0])); // true true false
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
  readonly #historyMax: number;
  readonly #originsMax: number;
  /** Per origin, least recently heard first. */
  readonly #origins = new Map<string, Origin>();
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
    this.#historyMax = options.historyMax ?? 64;
    this.#originsMax = options.originsMax ?? 4096;
    for (
      const [k, v] of [["historyMax", this.#historyMax], ["originsMax", this.#originsMax]] as const
    ) {
      if (!Number.isInteger(v) || v < 1) {
        throw new RangeError(`${k} must be a positive integer, got ${v}`);
      }
    }
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
    const o = this.#origins.get(node);
    const hb = o?.kept.get(o.top);
    return hb === undefined ? undefined : { ...hb };
  }

  /** The id is `[node, epoch, counter]`, the payload the heartbeat itself. */
  broadcastData(hb: Heartbeat): { id: HeartbeatId; payload: Heartbeat } {
    return { id: [hb.node, hb.epoch, hb.counter], payload: hb };
  }

  /**
   * Where `id` stands: "new" (not seen, within the window), "seen" (kept
   * here), or "stale" (an older epoch, or older than the window).
   */
  #place(id: HeartbeatId): "new" | "seen" | "stale" {
    const o = this.#origins.get(id[0]);
    if (o === undefined || id[1] > o.epoch) return "new";
    if (id[1] < o.epoch || id[2] <= o.top - this.#historyMax) return "stale";
    return o.kept.has(id[2]) ? "seen" : "new";
  }

  /** True for a heartbeat not seen here (as the seed's backend): a late older one too. */
  merge(id: HeartbeatId, payload: Heartbeat): boolean {
    if (!isId(id) || !isHeartbeat(payload)) return false;
    if (this.#place(id) !== "new") return false;
    const [node, epoch, counter] = id;
    let o = this.#origins.get(node);
    if (o === undefined || epoch > o.epoch) o = { epoch, top: counter, kept: new Map() };
    this.#origins.delete(node); // least recently heard first
    this.#origins.set(node, o);
    if (this.#origins.size > this.#originsMax) {
      const gone = this.#origins.keys().next().value!;
      this.#origins.delete(gone);
      this.#heardAt.delete(gone);
    }
    o.kept.set(counter, { node, epoch, counter, timestamp: payload.timestamp });
    if (counter > o.top) {
      o.top = counter;
      for (const c of o.kept.keys()) if (c <= o.top - this.#historyMax) o.kept.delete(c);
    }
    this.#heardAt.set(node, this.#clock.now());
    return true;
  }

  /** Stale when this heartbeat was seen here, or is older than what is kept. */
  isStale(id: HeartbeatId): boolean {
    return !isId(id) || this.#place(id) !== "new";
  }

  /** The heartbeat if it is kept here; stale if older than what is kept. */
  graft(id: HeartbeatId): GraftResult<Heartbeat> {
    if (!isId(id)) return { error: "malformed heartbeat id" };
    const place = this.#place(id);
    if (place === "stale") return "stale";
    const hb = this.#origins.get(id[0])?.kept.get(id[2]);
    return place === "seen" && hb !== undefined
      ? { ok: { ...hb } }
      : { error: "unknown heartbeat" };
  }

  /** Heartbeats need no anti-entropy: the next one repairs. */
  exchange(): "ignore" {
    return "ignore";
  }
}
