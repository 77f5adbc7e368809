/**
 * What a durable server is made of: the behaviour (its callbacks and what
 * they return), its options, and what it reports.
 *
 * @module
 */

import type { Clock } from "../base/clock.ts";
import type { Logger } from "../base/logger.ts";
import type { Key, Storage } from "./storage.ts";

/** An opaque reference to a caller, passed to `handleCall`. */
export interface From {
  /** Unique id of the call. */
  readonly id: string;
}

/** A side effect run after the commit, with the committed state. */
export type Action<S> = (state: S) => void | Promise<void>;

/** What `handleCall` (and `handleLocked` for a call) returns. */
export type CallResult<S, R> =
  | { reply: R; state: S; actions?: Action<S>[] }
  | { lock: S }
  | { stop: unknown; state: S; reply?: R };

/** What `handleCast`, `handleInfo` (and `handleLocked` otherwise) return. */
export type NoReplyResult<S> =
  | { state: S; actions?: Action<S>[] }
  | { lock: S }
  | { stop: unknown; state: S };

/** The event `handleLocked` resumes. */
export type LockedEvent = { type: "call"; from: From } | { type: "cast" } | { type: "info" };

/**
 * The callbacks of a durable server. `handleCall`, `handleCast` and
 * `handleInfo` run before a commit and may run again after a conflict or a
 * crash: keep them free of side effects and put those in `actions`, which run
 * once after the commit. Return `{ lock: state }` to commit `state` and
 * continue in `handleLocked`, outside any transaction (for long or effectful
 * work); queued messages wait until it returns. Every callback is bounded by
 * `callbackTimeoutMs`.
 *
 * @example A counter
 * ```ts
 * import type { DurableBehaviour } from "@murmur/murmur/durable";
 * const Counter: DurableBehaviour<number, "get", { add: number }, never, number> = {
 *   init: () => ({ state: 0 }),
 *   handleCall: (_msg, _from, n) => ({ reply: n, state: n }),
 *   handleCast: (msg, n) => ({ state: n + msg.add }),
 * };
 * console.log(typeof Counter.init);
 * ```
 */
export interface DurableBehaviour<
  S,
  Call = unknown,
  Cast = unknown,
  Info = unknown,
  Reply = unknown,
> {
  /** Makes the initial state (only when no durable state exists yet, or with `reset`). */
  init(arg: unknown): { state: S } | Promise<{ state: S }>;
  /** Handles a call; the reply goes back to the caller. */
  handleCall(msg: Call, from: From, state: S): CallResult<S, Reply> | Promise<CallResult<S, Reply>>;
  /** Handles a cast. */
  handleCast(msg: Cast, state: S): NoReplyResult<S> | Promise<NoReplyResult<S>>;
  /** Handles an info message (sent with `info()`, never queued). */
  handleInfo?(msg: Info, state: S): NoReplyResult<S> | Promise<NoReplyResult<S>>;
  /**
   * Continues a message whose callback returned `{ lock }`, outside any
   * transaction. It runs once per lock (again only after its holder died or
   * it failed); its result replaces the state when it commits, even if a
   * priority request changed the state meanwhile (as in dgen).
   */
  handleLocked?(
    event: LockedEvent,
    msg: unknown,
    state: S,
  ): CallResult<S, Reply> | NoReplyResult<S> | Promise<CallResult<S, Reply> | NoReplyResult<S>>;
}

/** Options of {@linkcode DurableServer.start}. Times are on the handle's monotonic clock. */
export interface DurableServerOptions {
  /** Where state and queue live. */
  storage: Storage;
  /**
   * The key prefix of this server's data (its identity). The server keeps its
   * keys under the tenant and a reserved part, so nested tenants (`["a"]` and
   * `["a", "b"]`) are disjoint servers.
   */
  tenant: Key;
  /**
   * Take messages from the queue and run callbacks.
   *
   * @default true
   */
  consume?: boolean;
  /**
   * Run `init` and overwrite the durable state even if it exists.
   *
   * @default false
   */
  reset?: boolean;
  /**
   * Keep the state in memory, keyed by its versionstamp, to avoid rereads.
   *
   * @default true
   */
  cache?: boolean;
  /**
   * Messages per commit: the throughput lever.
   *
   * @default 1
   */
  consumeBatch?: number;
  /**
   * A lock whose record has not been renewed for this long (as this handle's
   * own clock measures it) is taken over; a live holder renews it every third
   * of it (default 30000 ms; `Infinity`: never taken over).
   */
  lockTimeoutMs?: number;
  /**
   * A message lease (taken by a consumer whose callback runs for a while)
   * that has not been renewed for this long is taken over.
   *
   * @default 30000
   */
  leaseTimeoutMs?: number;
  /**
   * Bound on every callback: `init`, `handleCall`, `handleCast`, `handleInfo`,
   * `handleLocked` and actions. Past it the attempt is abandoned (never
   * committed) and counts as failed (default 60000 ms; `Infinity`: none).
   */
  callbackTimeoutMs?: number;
  /**
   * Failed attempts (a throw, a timeout, a result that cannot be committed) before a message is dead-lettered.
   *
   * @default 5
   */
  maxAttempts?: number;
  /**
   * Largest encoded state; a larger result is a failed attempt with `StateTooLargeError`.
   *
   * @default 8 MiB
   */
  stateBytesMax?: number;
  /**
   * Default timeout of `call` and `priorityCall` (`Infinity`: none).
   *
   * @default 5000
   */
  callTimeoutMs?: number;
  /**
   * Reply keys of abandoned calls are removed this long after their deadline.
   *
   * @default 60000
   */
  replyTtlMs?: number;
  /**
   * Period of garbage collection of stale reply keys and orphaned state chunks.
   *
   * @default 30000
   */
  gcIntervalMs?: number;
  /**
   * Retries of a priority request that keeps conflicting.
   *
   * @default 100
   */
  conflictRetriesMax?: number;
  /** Timers, monotonic and wall time (default the system clock). */
  clock?: Clock;
  /** Receives log records (default: `info` and above to the console). */
  logger?: Logger;
}

/** A dead-lettered message. */
export interface DeadLetter {
  /** Its key in the dead-letter queue (pass it to `replayDeadLetters`). */
  readonly key: Key;
  /** `"call"` or `"cast"`. */
  readonly kind: "call" | "cast";
  /** The message. */
  readonly msg: unknown;
  /** Failed attempts. */
  readonly attempts: number;
  /** The last error. */
  readonly error: { name: string; message: string };
  /** When it was dead-lettered (wall clock, ms since the epoch). */
  readonly at: number;
}

/** What {@linkcode DurableServer.status} reads from storage. */
export interface DurableServerStatus {
  /** The server's tenant key. */
  readonly tenant: Key;
  /** This handle's id (the owner named in lock and lease records). */
  readonly handle: string;
  /** Messages waiting in the durable queue. */
  readonly queueLength: number;
  /** Dead letters counted (up to the limit asked). */
  readonly deadLetters: number;
  /** True when there are more dead letters than counted. */
  readonly deadLettersMore: boolean;
  /** The callback lock (a callback answered `lock`), or undefined. */
  readonly lock: { readonly owner: string; readonly mine: boolean } | undefined;
  /** The lease of a consumer whose callbacks run for a while, or undefined. */
  readonly lease: { readonly owner: string; readonly mine: boolean } | undefined;
  /** This handle's counters. */
  readonly stats: DurableServerStats;
}

/** Counters of one {@linkcode DurableServer} handle. */
export interface DurableServerStats {
  /** Messages processed and committed by this handle. */
  processed: number;
  /** Successful commits by this handle's consumer. */
  commits: number;
  /** Commits that lost a conflict and were retried. */
  conflicts: number;
  /** State reads avoided by the cache. */
  cacheHits: number;
  /** State reads. */
  cacheMisses: number;
  /** Failed attempts (a throw, a timeout, a result that could not be committed). */
  failures: number;
  /** Callbacks abandoned after `callbackTimeoutMs`. */
  timeouts: number;
  /** Messages moved to the dead-letter queue. */
  deadLettered: number;
  /** Locks and leases taken over from a holder that stopped renewing them. */
  takeovers: number;
  /** Stale reply keys removed. */
  repliesCollected: number;
  /** State chunks of failed attempts removed. */
  chunksRemoved: number;
}
