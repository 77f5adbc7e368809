/**
 * Durable servers: gen_server-style servers whose state and message queue live
 * in a {@linkcode Storage}, so that they outlive any process (dgen_server's
 * semantics, and more).
 *
 * A consumer takes up to `consumeBatch` messages from the durable FIFO queue,
 * runs the callbacks, and writes the new state, the replies and the dequeue in
 * one atomic commit: a crash before the commit leaves the state unchanged and
 * the messages queued (at-least-once delivery, exactly-once effect on state).
 *
 * @module
 */

import { type Clock, systemClock, type TimerId } from "../membership/clock.ts";
import { decodeValue, encodeValue } from "../membership/codec.ts";
import { consoleLogger, type Logger } from "../membership/logger.ts";
import {
  DeadLetterError,
  DurableKilledError,
  DurableStoppedError,
  DurableTimeoutError,
} from "./errors.ts";
import {
  type Check,
  type Entry,
  type Key,
  type Mutation,
  type Storage,
  StorageError,
  subspace,
} from "./storage.ts";

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
 * work); queued messages wait until it returns.
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
  /** Continues a message whose callback returned `{ lock }`, outside any transaction. */
  handleLocked?(
    event: LockedEvent,
    msg: unknown,
    state: S,
  ): CallResult<S, Reply> | NoReplyResult<S> | Promise<CallResult<S, Reply> | NoReplyResult<S>>;
}

/** Options of {@linkcode DurableServer.start}. */
export interface DurableServerOptions {
  /** Where state and queue live. */
  storage: Storage;
  /** The key prefix of this server's data (its identity). */
  tenant: Key;
  /** Take messages from the queue and run callbacks (default true). */
  consume?: boolean;
  /** Run `init` and overwrite the durable state even if it exists (default false). */
  reset?: boolean;
  /** Keep the state in memory, keyed by its versionstamp, to avoid rereads (default true). */
  cache?: boolean;
  /** Messages per commit (default 1): the throughput lever. */
  consumeBatch?: number;
  /** A lock older than this is taken over by another consumer (default Infinity: never). */
  lockTimeoutMs?: number;
  /** Failed callbacks (throws) before a message is dead-lettered (default 5). */
  maxAttempts?: number;
  /** Default timeout of `call` and `priorityCall` (default 5000 ms). */
  callTimeoutMs?: number;
  /** Reply keys of abandoned calls are removed this long after their deadline (default 60000 ms). */
  replyTtlMs?: number;
  /** Period of garbage collection of stale reply keys and orphaned state chunks (default 30000 ms). */
  gcIntervalMs?: number;
  /** Retries of a priority request that keeps conflicting (default 100). */
  conflictRetriesMax?: number;
  /** Timers (default the system clock). */
  clock?: Clock;
  /** Receives log records (default: warnings and errors to the console). */
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
  /** When it was dead-lettered (clock time). */
  readonly at: number;
}

/** Counters of one handle. */
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
  /** Callback failures (throws). */
  failures: number;
  /** Messages moved to the dead-letter queue. */
  deadLettered: number;
  /** Stale reply keys removed. */
  repliesCollected: number;
}

// Queue record: [kind 0 call | 1 cast, msg, replyId | null, attempts]
type QueueRecord = [0 | 1, unknown, string | null, number];
// Reply record: [status 0 pending | 1 ok | 2 dead-lettered, value, expiresAt]
type ReplyRecord = [0 | 1 | 2, unknown, number];
// Lock record: [owner, at, kind 0 call | 1 cast | 2 info, msg, replyId | null]
type LockRecord = [string, number, 0 | 1 | 2, unknown, string | null];
// State header: [generation, chunks, bytes]
// A state small enough to share one value with its header is stored inline (chunks 0).
type Header = [string, number, number, Uint8Array?];
/** Header bytes besides an inline state. */
const HEADER_OVERHEAD_BYTES = 64;

const K_STATE: Key = ["state"];
const K_QUEUE: Key = ["queue"];
const K_QV: Key = ["qv"];
/** Bumped by every commit that takes messages off the queue: consumers serialize on it. */
const K_QCONS: Key = ["qcons"];
/** Messages in the queue (mod 2^64: dequeues add 2^64 - n). */
const K_QLEN: Key = ["qlen"];
const qlenAdd = (n: number): Mutation => ({
  type: "sum",
  key: K_QLEN,
  value: BigInt.asUintN(64, BigInt(n)),
});
const K_LOCK: Key = ["lock"];
const K_DLQ: Key = ["dlq"];
const K_REPLY = "reply";
const ORPHAN_GRACE_MS = 10 * 60 * 1000;
/** A caller whose handle consumes waits this long for a local answer before watching its reply key. */
const REMOTE_REPLY_WATCH_DELAY_MS = 25;

const enc = (v: unknown) => encodeValue(v);
function dec<T>(e: Entry): T {
  if (!(e.value instanceof Uint8Array)) {
    throw new StorageError(`key ${JSON.stringify(e.key)} does not hold bytes`);
  }
  return decodeValue(e.value) as T;
}

function positive(name: string, v: number | undefined, dflt: number, min = 1): number {
  const x = v ?? dflt;
  if (typeof x !== "number" || Number.isNaN(x) || x < min) {
    throw new RangeError(`${name} must be a number >= ${min}, got ${String(v)}`);
  }
  return x;
}

function randomId(): string {
  return Array.from(
    crypto.getRandomValues(new Uint8Array(12)),
    (b) => b.toString(16).padStart(2, "0"),
  ).join("");
}

interface Loaded<S> {
  state: S;
  /** Versionstamp of the header, null when no state exists. */
  versionstamp: string | null;
  header: Header | null;
  bytes: Uint8Array;
}

interface Waiter {
  resolve: (v: unknown) => void;
  reject: (e: unknown) => void;
}

/**
 * A handle on a durable server. Any number of handles, in any number of
 * processes, may act on one server (one `tenant` of one storage); those with
 * `consume: true` run the callbacks.
 *
 * @example A counter whose state outlives the process
 * ```ts
 * import { DurableServer, type DurableBehaviour, MemoryStorage } from "@murmur/murmur/durable";
 * const Counter: DurableBehaviour<number, "get", { add: number }, never, number> = {
 *   init: () => ({ state: 0 }),
 *   handleCall: (_msg, _from, n) => ({ reply: n, state: n }),
 *   handleCast: (msg, n) => ({ state: n + msg.add }),
 * };
 * await using storage = new MemoryStorage();
 * await using counter = await DurableServer.start(Counter, null, { storage, tenant: ["counters", "c1"] });
 * await counter.cast({ add: 2 });
 * await counter.castBatch([{ add: 1 }, { add: 1 }]);
 * console.log(await counter.call("get")); // 4
 * ```
 */
export class DurableServer<S, Call = unknown, Cast = unknown, Info = unknown, Reply = unknown>
  implements AsyncDisposable {
  readonly #b: DurableBehaviour<S, Call, Cast, Info, Reply>;
  readonly #db: Storage;
  readonly #id = randomId();
  readonly #clock: Clock;
  readonly #log: Logger;
  readonly #consume: boolean;
  readonly #useCache: boolean;
  readonly #batch: number;
  readonly #lockTimeoutMs: number;
  readonly #maxAttempts: number;
  readonly #callTimeoutMs: number;
  readonly #replyTtlMs: number;
  readonly #gcIntervalMs: number;
  readonly #conflictRetriesMax: number;
  readonly #tenant: Key;
  #cache: Loaded<S> | undefined;
  /** Versionstamp of the queue length when this handle last saw the queue empty and unlocked. */
  #idleQlen: string | null | undefined;
  readonly #waiters = new Map<string, Waiter>();
  readonly #stopCtl = new AbortController();
  #stopReason: unknown;
  #locking = false;
  #loop: Promise<void> | undefined;
  #gcTimer: TimerId | undefined;
  readonly #stopped = Promise.withResolvers<unknown>();
  readonly #stats: DurableServerStats = {
    processed: 0,
    commits: 0,
    conflicts: 0,
    cacheHits: 0,
    cacheMisses: 0,
    failures: 0,
    deadLettered: 0,
    repliesCollected: 0,
  };

  private constructor(
    behaviour: DurableBehaviour<S, Call, Cast, Info, Reply>,
    options: DurableServerOptions,
  ) {
    this.#b = behaviour;
    this.#tenant = options.tenant;
    this.#db = subspace(options.storage, options.tenant);
    this.#clock = options.clock ?? systemClock;
    this.#log = options.logger ?? consoleLogger;
    this.#consume = options.consume ?? true;
    this.#useCache = options.cache ?? true;
    this.#batch = positive("consumeBatch", options.consumeBatch, 1);
    this.#lockTimeoutMs = positive("lockTimeoutMs", options.lockTimeoutMs, Infinity);
    this.#maxAttempts = positive("maxAttempts", options.maxAttempts, 5);
    this.#callTimeoutMs = positive("callTimeoutMs", options.callTimeoutMs, 5000);
    this.#replyTtlMs = positive("replyTtlMs", options.replyTtlMs, 60_000, 0);
    this.#gcIntervalMs = positive("gcIntervalMs", options.gcIntervalMs, 30_000);
    this.#conflictRetriesMax = positive("conflictRetriesMax", options.conflictRetriesMax, 100);
    if (this.#batch > 1000 || !Number.isInteger(this.#batch)) {
      throw new RangeError(`consumeBatch must be an integer in [1, 1000], got ${this.#batch}`);
    }
  }

  /**
   * Starts a handle: initialises the durable state if there is none (or with
   * `reset`), then, with `consume`, starts taking messages from the queue.
   */
  static async start<S, Call = unknown, Cast = unknown, Info = unknown, Reply = unknown>(
    behaviour: DurableBehaviour<S, Call, Cast, Info, Reply>,
    initArg: unknown,
    options: DurableServerOptions,
  ): Promise<DurableServer<S, Call, Cast, Info, Reply>> {
    if (typeof behaviour !== "object" || behaviour === null) {
      throw new TypeError("behaviour must be an object");
    }
    for (const f of ["init", "handleCall", "handleCast"] as const) {
      if (typeof behaviour[f] !== "function") {
        throw new TypeError(`behaviour.${f} must be a function`);
      }
    }
    if (typeof options !== "object" || options === null || options.storage === undefined) {
      throw new TypeError("options.storage is required");
    }
    if (!Array.isArray(options.tenant) || options.tenant.length === 0) {
      throw new TypeError('options.tenant must be a non-empty key, such as ["counters", "c1"]');
    }
    const server = new DurableServer(behaviour, options);
    await server.#init(initArg, options.reset ?? false);
    if (server.#consume) {
      server.#loop = server.#consumeLoop();
      server.#scheduleGc();
    }
    return server;
  }

  /** The tenant key of this server. */
  get tenant(): Key {
    return this.#tenant;
  }

  /** Resolves with the reason once this handle stops. */
  get stopped(): Promise<unknown> {
    return this.#stopped.promise;
  }

  /** Counters of this handle. */
  stats(): DurableServerStats {
    return { ...this.#stats };
  }

  /**
   * Sends a request through the durable queue and waits for the reply.
   *
   * @throws {DurableTimeoutError} no reply within `timeoutMs` (the request may still be processed).
   * @throws {DeadLetterError} the callback failed `maxAttempts` times.
   * @throws {DurableKilledError} the server was killed while waiting.
   */
  async call(msg: Call, options: { timeoutMs?: number } = {}): Promise<Reply> {
    this.#assertRunning();
    const timeoutMs = positive("timeoutMs", options.timeoutMs, this.#callTimeoutMs);
    const id = randomId();
    const started = this.#clock.now();
    if (this.#consume && this.#batch === 1 && !this.#locking) {
      let timer: TimerId | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = this.#clock.setTimeout(() => reject(new DurableTimeoutError(timeoutMs)), timeoutMs);
      });
      try {
        const inline = await Promise.race([this.#tryInline(msg, id), timeout]);
        if (inline.done) return inline.reply;
      } finally {
        this.#clock.clearTimeout(timer!);
      }
    }
    const remainingMs = Math.max(1, timeoutMs - (this.#clock.now() - started));
    const replyKey: Key = [K_REPLY, id];
    const waiter = Promise.withResolvers<unknown>();
    this.#waiters.set(id, waiter);
    const expires = this.#clock.now() + remainingMs;
    try {
      await this.#commitOrThrow([], [
        {
          type: "set",
          key: replyKey,
          value: enc([0, null, expires + this.#replyTtlMs] satisfies ReplyRecord),
        },
        {
          type: "appendOrdered",
          prefix: K_QUEUE,
          value: enc([0, msg, id, 0] satisfies QueueRecord),
        },
        { type: "sum", key: K_QV, value: 1n },
        qlenAdd(1),
      ]);
    } catch (e) {
      this.#waiters.delete(id);
      throw e;
    }
    // A local consumer answers through `waiter`; another process's through the reply key,
    // which is watched only if the answer is not here soon (or at once without a local consumer).
    const watchCtl = new AbortController();
    let remote: Promise<void> | undefined;
    const startWatch = () => (remote = this.#watchReply(replyKey, watchCtl.signal, waiter));
    const watchTimer = this.#consume
      ? this.#clock.setTimeout(startWatch, REMOTE_REPLY_WATCH_DELAY_MS)
      : undefined;
    if (!this.#consume) startWatch();
    let timer: TimerId | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = this.#clock.setTimeout(() => reject(new DurableTimeoutError(timeoutMs)), remainingMs);
    });
    try {
      return await Promise.race([waiter.promise, timeout]) as Reply;
    } catch (e) {
      if (e instanceof DurableTimeoutError) {
        // Abandon the reply: remove its key so that nothing is left behind.
        await this.#db.commit([], [{ type: "delete", key: replyKey }]).catch(() => {});
      }
      throw e;
    } finally {
      this.#clock.clearTimeout(timer!);
      if (watchTimer !== undefined) this.#clock.clearTimeout(watchTimer);
      this.#waiters.delete(id);
      watchCtl.abort();
      await remote;
    }
  }

  /**
   * The inline path (as in dgen, only with `consumeBatch` 1): when the queue is
   * empty and unlocked, the call runs in the caller's own commit, which checks
   * that nothing was enqueued meanwhile (the `qv` counter), so FIFO order holds.
   * Anything unusual (a lock, a stop, a throw, a conflict) falls back to the queue.
   */
  async #tryInline(msg: Call, id: string): Promise<{ done: true; reply: Reply } | { done: false }> {
    // First optimistically, with no reads: the cached state and the queue-length
    // versionstamp seen idle last time. The commit's checks make it safe.
    const idle = this.#idleQlen;
    if (idle !== undefined && this.#useCache && this.#cache !== undefined) {
      const r = await this.#inlineAttempt(msg, id, this.#cache, idle);
      if (r !== "conflict") return r;
    }
    this.#idleQlen = undefined;
    const [qlen, lock, header] = await this.#db.getMany([K_QLEN, K_LOCK, K_STATE]);
    if (lock!.value !== null || (qlen!.value !== null && qlen!.value !== 0n)) {
      return { done: false };
    }
    this.#idleQlen = qlen!.versionstamp;
    const r = await this.#inlineAttempt(msg, id, await this.#load(header), qlen!.versionstamp);
    return r === "conflict" ? { done: false } : r;
  }

  async #inlineAttempt(
    msg: Call,
    id: string,
    loaded: Loaded<S>,
    qlenVersionstamp: string | null,
  ): Promise<{ done: true; reply: Reply } | { done: false } | "conflict"> {
    let u: ReturnType<typeof unpack<S, Reply>>;
    try {
      u = unpack(await this.#b.handleCall(msg, { id }, loaded.state));
    } catch {
      return { done: false }; // retried, counted and maybe dead-lettered through the queue
    }
    if (u.lock || u.stop !== undefined) return { done: false };
    const checks: Check[] = [
      { key: K_QLEN, versionstamp: qlenVersionstamp },
      { key: K_LOCK, versionstamp: null },
      { key: K_STATE, versionstamp: loaded.versionstamp },
    ];
    if (await this.#commitWithState(u.state, loaded, checks, []) === undefined) {
      this.#idleQlen = undefined;
      return "conflict";
    }
    this.#stats.processed++;
    this.#stats.commits++;
    await this.#runActions(u.actions, u.state);
    return { done: true, reply: u.reply as Reply };
  }

  async #watchReply(key: Key, signal: AbortSignal, waiter: Waiter): Promise<void> {
    try {
      let seen = false;
      for await (const [e] of this.#db.watch([key], signal)) {
        if (e === undefined) continue;
        if (e.value === null) {
          // Deleted: by a local consumer that answered through the waiter, or by kill().
          if (seen) waiter.reject(new DurableKilledError("reply key deleted"));
          if (seen) return;
          continue;
        }
        seen = true;
        const [status, value] = dec<ReplyRecord>(e);
        if (status === 0) continue;
        await this.#db.commit([], [{ type: "delete", key }]).catch(() => {});
        if (status === 1) waiter.resolve(value);
        else {
          const [attempts, name, message] = value as [number, string, string];
          waiter.reject(new DeadLetterError(attempts, name, message));
        }
        return;
      }
    } catch (e) {
      if (!signal.aborted) waiter.reject(e);
    }
  }

  /** Queues a message for `handleCast`. Resolves once it is durably queued. */
  async cast(msg: Cast): Promise<void> {
    this.#assertRunning();
    await this.#commitOrThrow([], [
      {
        type: "appendOrdered",
        prefix: K_QUEUE,
        value: enc([1, msg, null, 0] satisfies QueueRecord),
      },
      { type: "sum", key: K_QV, value: 1n },
      qlenAdd(1),
    ]);
  }

  /** Queues several casts atomically (all or none), in order. */
  async castBatch(msgs: readonly Cast[]): Promise<void> {
    this.#assertRunning();
    if (!Array.isArray(msgs)) throw new TypeError("castBatch takes an array");
    if (msgs.length === 0) return;
    await this.#commitOrThrow([], [
      ...msgs.map((m): Mutation => ({
        type: "appendOrdered",
        prefix: K_QUEUE,
        value: enc([1, m, null, 0] satisfies QueueRecord),
      })),
      { type: "sum", key: K_QV, value: 1n },
      qlenAdd(msgs.length),
    ]);
  }

  /**
   * Runs `handleCall` now, bypassing the queue and any lock (no ordering with
   * queued messages). Useful for snapshot reads. Errors of the callback are
   * thrown as they are.
   */
  async priorityCall(msg: Call): Promise<Reply> {
    this.#assertRunning();
    const from: From = { id: randomId() };
    return await this.#priority((s) => this.#b.handleCall(msg, from, s), 0, msg) as Reply;
  }

  /** Runs `handleCast` now, bypassing the queue and any lock. */
  async priorityCast(msg: Cast): Promise<void> {
    this.#assertRunning();
    await this.#priority((s) => this.#b.handleCast(msg, s), 1, msg);
  }

  /** Runs `handleInfo` now (info messages are never queued). */
  async info(msg: Info): Promise<void> {
    this.#assertRunning();
    const h = this.#b.handleInfo;
    if (h === undefined) throw new TypeError("the behaviour has no handleInfo");
    await this.#priority((s) => h.call(this.#b, msg, s), 2, msg);
  }

  /** The dead-letter queue, oldest first (at most `limit`, default 1000). */
  async deadLetters(limit = 1000): Promise<DeadLetter[]> {
    const es = await this.#db.list({ prefix: K_DLQ }, { limit });
    return es.map((e) => {
      const [rec, error, at] = dec<[QueueRecord, { name: string; message: string }, number]>(e);
      return {
        key: e.key,
        kind: rec[0] === 0 ? "call" : "cast",
        msg: rec[1],
        attempts: rec[3],
        error,
        at,
      };
    });
  }

  /**
   * Moves dead letters back to the end of the queue with their attempts reset
   * (all of them, or those whose keys are given). Returns how many moved.
   */
  async replayDeadLetters(keys?: readonly Key[]): Promise<number> {
    const letters = keys === undefined
      ? await this.#db.list({ prefix: K_DLQ })
      : (await this.#db.getMany(keys)).filter((e) => e.value !== null);
    let moved = 0;
    const per = Math.max(1, Math.floor((this.#db.limits.mutationsMax - 1) / 2));
    for (let i = 0; i < letters.length; i += per) {
      const group = letters.slice(i, i + per);
      const mutations: Mutation[] = [];
      const checks: Check[] = [];
      for (const e of group) {
        const [rec] = dec<[QueueRecord]>(e);
        checks.push({ key: e.key, versionstamp: e.versionstamp });
        mutations.push({ type: "delete", key: e.key });
        // A replayed call has lost its caller: it is replayed as a call with no reply key.
        mutations.push({
          type: "appendOrdered",
          prefix: K_QUEUE,
          value: enc([rec[0], rec[1], null, 0]),
        });
      }
      mutations.push({ type: "sum", key: K_QV, value: 1n }, qlenAdd(group.length));
      if ((await this.#db.commit(checks, mutations)).ok) moved += group.length;
    }
    return moved;
  }

  /**
   * Deletes the server: all durable state, the queue, the dead letters, and
   * the reply keys of waiting calls (which then fail with
   * {@linkcode DurableKilledError}). This handle stops with `reason`.
   */
  async kill(reason: unknown = "killed"): Promise<void> {
    const killed = new DurableKilledError(reason);
    for (const w of this.#waiters.values()) w.reject(killed);
    this.#waiters.clear();
    await this.#halt(reason);
    const per = this.#db.limits.mutationsMax;
    for (let i = 0; i < 100_000; i++) {
      const es = await this.#db.list({ prefix: [] }, { limit: per });
      if (es.length === 0) break;
      await this.#commitOrThrow([], es.map((e): Mutation => ({ type: "delete", key: e.key })));
    }
  }

  /** Stops this handle (its consumer and timers). The durable server lives on. */
  async stop(reason: unknown = "normal"): Promise<void> {
    const stopped = new DurableStoppedError(reason);
    for (const w of this.#waiters.values()) w.reject(stopped);
    this.#waiters.clear();
    await this.#halt(reason);
  }

  /** Same as `stop()`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.stop();
  }

  // ------------------------------------------------------------- internals

  async #halt(reason: unknown): Promise<void> {
    if (!this.#stopCtl.signal.aborted) {
      this.#stopReason = reason;
      this.#stopCtl.abort(reason);
      if (this.#gcTimer !== undefined) this.#clock.clearTimeout(this.#gcTimer);
    }
    await this.#loop;
    this.#stopped.resolve(this.#stopReason);
  }

  #assertRunning(): void {
    if (this.#stopCtl.signal.aborted) throw new DurableStoppedError(this.#stopReason);
  }

  async #commitOrThrow(checks: Check[], mutations: Mutation[]): Promise<string> {
    const r = await this.#db.commit(checks, mutations);
    if (!r.ok) throw new StorageError("commit failed its checks");
    return r.versionstamp;
  }

  async #init(arg: unknown, reset: boolean): Promise<void> {
    const header = await this.#db.get(K_STATE);
    if (header.value !== null && !reset) return;
    const { state } = await this.#b.init(arg);
    const write = await this.#stateWrite(
      state,
      header.value === null ? null : dec<Header>(header),
      0,
      0,
    );
    const r = await this.#db.commit(
      [{ key: K_STATE, versionstamp: header.versionstamp }, ...write.checks],
      write.mutations,
    );
    if (!r.ok && reset) {
      throw new StorageError("another handle changed the state during reset; try again");
    }
    // Without reset, losing this race means another handle initialised it first: use theirs.
  }

  /** Reads the state (from the cache when its versionstamp still matches). */
  async #load(known?: Entry): Promise<Loaded<S>> {
    for (let attempt = 0; attempt < 100; attempt++) {
      const h = attempt === 0 && known !== undefined ? known : await this.#db.get(K_STATE);
      if (h.value === null) throw new StorageError("the durable state is missing (killed?)");
      if (
        this.#useCache && this.#cache !== undefined && this.#cache.versionstamp === h.versionstamp
      ) {
        this.#stats.cacheHits++;
        return this.#cache;
      }
      this.#stats.cacheMisses++;
      const header = dec<Header>(h);
      const [gen, chunks, size, inline] = header;
      if (chunks === 0 && inline instanceof Uint8Array) {
        const loaded: Loaded<S> = {
          state: decodeValue(inline) as S,
          versionstamp: h.versionstamp,
          header,
          bytes: inline,
        };
        if (this.#useCache) this.#cache = loaded;
        return loaded;
      }
      const parts = await this.#db.list({ prefix: [...K_STATE, gen] }, { limit: chunks });
      if (parts.length !== chunks) continue; // replaced meanwhile: read again
      const bytes = new Uint8Array(size);
      let at = 0;
      for (const p of parts) {
        const v = p.value as Uint8Array;
        bytes.set(v, at);
        at += v.length;
      }
      const loaded: Loaded<S> = {
        state: decodeValue(bytes) as S,
        versionstamp: h.versionstamp,
        header,
        bytes,
      };
      if (this.#useCache) this.#cache = loaded;
      return loaded;
    }
    throw new StorageError("the state kept changing while being read");
  }

  /**
   * The mutations that replace the state with `state`, chunked to the value
   * limit. Chunks that do not fit in the commit beside `otherBytes` and
   * `otherMutations` are written first under a fresh generation (invisible until
   * the header names it) and checked in the final commit.
   */
  async #stateWrite(
    state: S,
    old: Header | null,
    otherBytes: number,
    otherMutations: number,
  ): Promise<{ checks: Check[]; mutations: Mutation[]; bytes: Uint8Array; header: Header }> {
    const bytes = enc(state);
    const L = this.#db.limits;
    const oldChunks: Mutation[] = [];
    if (old !== null) {
      for (let i = 0; i < old[1]; i++) {
        oldChunks.push({ type: "delete", key: [...K_STATE, old[0], i] });
      }
    }
    if (bytes.length + HEADER_OVERHEAD_BYTES <= L.valueBytesMax) {
      // Small state: inline in the header, one mutation.
      const header: Header = [old?.[0] ?? "inline", 0, bytes.length, bytes];
      return {
        checks: [],
        mutations: [{ type: "set", key: K_STATE, value: enc(header) }, ...oldChunks],
        bytes,
        header,
      };
    }
    const chunk = L.valueBytesMax;
    const n = Math.max(1, Math.ceil(bytes.length / chunk));
    const gen = `${this.#clock.now().toString(36).padStart(10, "0")}-${randomId().slice(0, 8)}`;
    const header: Header = [gen, n, bytes.length];
    const mutations: Mutation[] = [];
    const checks: Check[] = [];
    const keyOverhead = 64;
    let budgetBytes = L.commitBytesMax - otherBytes - 4096;
    let budgetMutations = L.mutationsMax - otherMutations - 2 - (old?.[1] ?? 0);
    const early: Mutation[] = [];
    for (let i = 0; i < n; i++) {
      const value = bytes.subarray(i * chunk, (i + 1) * chunk);
      const m: Mutation = { type: "set", key: [...K_STATE, gen, i], value };
      if (value.length + keyOverhead <= budgetBytes && budgetMutations > 0) {
        mutations.push(m);
        budgetBytes -= value.length + keyOverhead;
        budgetMutations--;
      } else early.push(m);
    }
    // Write what does not fit ahead, in as many commits as needed.
    let batch: Mutation[] = [];
    let batchBytes = 0;
    const flush = async () => {
      if (batch.length === 0) return;
      const vs = await this.#commitOrThrow([], batch);
      for (const m of batch) checks.push({ key: (m as { key: Key }).key, versionstamp: vs });
      batch = [];
      batchBytes = 0;
    };
    for (const m of early) {
      const size = (m as { value: Uint8Array }).value.length + keyOverhead;
      if (batchBytes + size > L.commitBytesMax - 4096 || batch.length >= L.mutationsMax) {
        await flush();
      }
      batch.push(m);
      batchBytes += size;
    }
    await flush();
    if (checks.length > L.checksMax - 2) {
      throw new StorageError(
        `state of ${bytes.length} bytes needs more chunks than one commit can check`,
      );
    }
    mutations.push({ type: "set", key: K_STATE, value: enc(header) }, ...oldChunks);
    return { checks, mutations, bytes, header };
  }

  async #priority(
    run: (
      state: S,
    ) => CallResult<S, Reply> | NoReplyResult<S> | Promise<CallResult<S, Reply> | NoReplyResult<S>>,
    kind: 0 | 1 | 2,
    msg: unknown,
  ): Promise<unknown> {
    for (let attempt = 0; attempt <= this.#conflictRetriesMax; attempt++) {
      const loaded = await this.#load();
      const result = await run(loaded.state);
      const { state, reply, actions, lock, stop } = unpack(result);
      const mutations: Mutation[] = [];
      const checks: Check[] = [{ key: K_STATE, versionstamp: loaded.versionstamp }];
      let lockRec: LockRecord | undefined;
      if (lock) {
        lockRec = [this.#id, this.#clock.now(), kind, msg, null];
        checks.push({ key: K_LOCK, versionstamp: null });
        mutations.push({ type: "set", key: K_LOCK, value: enc(lockRec) });
      }
      if (await this.#commitWithState(state, loaded, checks, mutations) === undefined) continue;
      await this.#runActions(actions, state);
      if (lockRec !== undefined) return await this.#runLocked(lockRec);
      if (stop !== undefined) void this.#halt(stop);
      return reply;
    }
    throw new StorageError(
      `priority request kept conflicting (${this.#conflictRetriesMax} retries)`,
    );
  }

  #remember(state: S, versionstamp: string, write: { bytes: Uint8Array; header: Header }): void {
    if (this.#useCache) {
      this.#cache = { state, versionstamp, header: write.header, bytes: write.bytes };
    }
  }
  /**
   * Writes `state` (unless unchanged) together with `checks` and `mutations`
   * in one commit. On a conflict, drops the cache and returns undefined.
   */
  async #commitWithState(
    state: S,
    loaded: Loaded<S>,
    checks: Check[],
    mutations: Mutation[],
  ): Promise<string | undefined> {
    let write:
      | { checks: Check[]; mutations: Mutation[]; bytes: Uint8Array; header: Header }
      | undefined;
    if (!equalBytes(enc(state), loaded.bytes)) {
      let otherBytes = 0;
      for (const m of mutations) if (m.type === "set") otherBytes += m.value.length;
      write = await this.#stateWrite(state, loaded.header, otherBytes, mutations.length);
    }
    const r = await this.#db.commit(
      write ? [...checks, ...write.checks] : checks,
      write ? [...mutations, ...write.mutations] : mutations,
    );
    if (!r.ok) {
      this.#stats.conflicts++;
      this.#cache = undefined;
      return undefined;
    }
    if (write !== undefined) this.#remember(state, r.versionstamp, write);
    return r.versionstamp;
  }

  /**
   * Adds to `mutations` what answers call `id`: nothing when its caller gave up
   * (no reply key); when the caller waits in this handle, the removal of its key
   * (the waiter is returned, to settle after the commit); else the reply record.
   * Either way the key is checked, so a caller that gives up meanwhile makes the
   * commit retry without its reply: no reply key of an abandoned call is left.
   */
  #reply(
    id: string,
    sentinel: Entry | undefined,
    status: 1 | 2,
    value: unknown,
    checks: Check[],
    mutations: Mutation[],
  ): Waiter | undefined {
    if (sentinel === undefined || sentinel.value === null) return undefined;
    checks.push({ key: [K_REPLY, id], versionstamp: sentinel.versionstamp });
    const waiter = this.#waiters.get(id);
    if (waiter !== undefined) {
      mutations.push({ type: "delete", key: [K_REPLY, id] });
      return waiter;
    }
    const [, , expiresAt] = dec<ReplyRecord>(sentinel);
    mutations.push({
      type: "set",
      key: [K_REPLY, id],
      value: enc([status, value, expiresAt] satisfies ReplyRecord),
    });
    return undefined;
  }

  async #runActions(actions: Action<S>[], state: S): Promise<void> {
    for (const a of actions) {
      try {
        await a(state);
      } catch (e) {
        this.#log({ level: "error", node: this.#tenant.join("/"), msg: "action threw", error: e });
      }
    }
  }

  #scheduleGc(): void {
    this.#gcTimer = this.#clock.setTimeout(() => {
      void this.#gc().catch((e) =>
        this.#log({
          level: "warn",
          node: this.#tenant.join("/"),
          msg: "garbage collection failed",
          error: e,
        })
      ).finally(() => {
        if (!this.#stopCtl.signal.aborted) this.#scheduleGc();
      });
    }, this.#gcIntervalMs);
  }

  /** Removes reply keys past their expiry and state generations no header names. */
  async #gc(): Promise<number> {
    const now = this.#clock.now();
    const stale: Entry[] = [];
    for (const e of await this.#db.list({ prefix: [K_REPLY] })) {
      const [, , expiresAt] = dec<ReplyRecord>(e);
      if (expiresAt < now) stale.push(e);
    }
    const h = await this.#db.get(K_STATE);
    const current = h.value === null ? undefined : dec<Header>(h)[0];
    const orphans: Entry[] = [];
    for (const e of await this.#db.list({ prefix: K_STATE })) {
      const gen = e.key[1] as string;
      const born = parseInt(gen.split("-")[0]!, 36);
      if (gen !== current && now - born > ORPHAN_GRACE_MS) orphans.push(e);
    }
    const all = [...stale, ...orphans];
    for (let i = 0; i < all.length; i += 100) {
      const group = all.slice(i, i + 100);
      const r = await this.#db.commit(
        group.map((e) => ({ key: e.key, versionstamp: e.versionstamp })),
        group.map((e) => ({ type: "delete", key: e.key })),
      );
      if (r.ok) this.#stats.repliesCollected += group.filter((e) => e.key[0] === K_REPLY).length;
    }
    return all.length;
  }

  /** Runs the GC now (it also runs every `gcIntervalMs`); returns how many keys it removed. */
  collectGarbage(): Promise<number> {
    return this.#gc();
  }

  async #consumeLoop(): Promise<void> {
    const signal = this.#stopCtl.signal;
    const wake = this.#db.watch([K_QV, K_LOCK], signal)[Symbol.asyncIterator]();
    // One pending next() at a time: a second queued call would swallow a wakeup.
    let pendingWake: Promise<unknown> | undefined;
    let backoff = 0;
    try {
      while (!signal.aborted) {
        let progressed: boolean | number;
        try {
          progressed = await this.#consumeOnce();
          backoff = 0;
        } catch (e) {
          if (signal.aborted) break;
          this.#log({
            level: "warn",
            node: this.#tenant.join("/"),
            msg: "consumer error, retrying",
            error: e,
          });
          this.#cache = undefined;
          backoff = Math.min(1000, backoff * 2 + 10);
          progressed = backoff;
        }
        if (progressed === true) continue;
        // Nothing to do: wait for an enqueue, a lock change, or a deadline.
        const waitMs = typeof progressed === "number" ? progressed : undefined;
        let timer: TimerId | undefined;
        const deadline = waitMs === undefined ? undefined : new Promise<void>((r) => {
          timer = this.#clock.setTimeout(r, waitMs);
        });
        pendingWake ??= wake.next().then(() => (pendingWake = undefined));
        await Promise.race([pendingWake, ...(deadline ? [deadline] : [])]);
        if (timer !== undefined) this.#clock.clearTimeout(timer);
      }
    } finally {
      await wake.return?.();
    }
  }

  /**
   * One consume cycle. Returns true when it made progress, false when there is
   * nothing to do, or a number of ms to wait before looking again.
   */
  async #consumeOnce(): Promise<boolean | number> {
    if (this.#locking) return false;
    const [lock, qcons] = (await this.#db.getMany([K_LOCK, K_QCONS])) as [Entry, Entry];
    if (lock.value !== null) {
      const rec = dec<LockRecord>(lock);
      const age = this.#clock.now() - rec[1];
      if (rec[0] === this.#id) return false;
      if (age < this.#lockTimeoutMs) {
        return Number.isFinite(this.#lockTimeoutMs) ? this.#lockTimeoutMs - age + 1 : false;
      }
      // The holder is presumed dead: take the lock over and finish its work.
      const mine: LockRecord = [this.#id, this.#clock.now(), rec[2], rec[3], rec[4]];
      const r = await this.#db.commit([{ key: K_LOCK, versionstamp: lock.versionstamp }], [{
        type: "set",
        key: K_LOCK,
        value: enc(mine),
      }]);
      if (!r.ok) return true;
      this.#log({
        level: "warn",
        node: this.#tenant.join("/"),
        msg: `took over a lock held since ${rec[1]}`,
      });
      await this.#runLocked(mine);
      return true;
    }
    const items = await this.#db.list({ prefix: K_QUEUE }, { limit: this.#batch });
    if (items.length === 0) return false;
    const loaded = await this.#load();
    const callIds = items.map((e) => dec<QueueRecord>(e)[2]).filter((id): id is string =>
      id !== null
    );
    const sentinels = new Map<string, Entry>();
    if (callIds.length > 0) {
      for (const e of await this.#db.getMany(callIds.map((id) => [K_REPLY, id]))) {
        if (e.value !== null) sentinels.set(e.key[1] as string, e);
      }
    }

    let state = loaded.state;
    const done: Entry[] = [];
    const replies: { id: string; value: unknown }[] = [];
    const actions: Action<S>[] = [];
    let lockRec: LockRecord | undefined;
    let stop: { reason: unknown } | undefined;
    let failure: { item: Entry; rec: QueueRecord; error: Error } | undefined;
    // Each reply is checked against its key, so a batch holds as many calls as checks allow.
    const callsMax = Math.max(1, this.#db.limits.checksMax - 4);
    let calls = 0;
    for (const item of items) {
      const rec = dec<QueueRecord>(item);
      const [kind, msg, replyId] = rec;
      if (kind === 0 && ++calls > callsMax) break;
      let result: CallResult<S, Reply> | NoReplyResult<S>;
      try {
        result = kind === 0
          ? await this.#b.handleCall(msg as Call, { id: replyId ?? randomId() }, state)
          : await this.#b.handleCast(msg as Cast, state);
        if ("lock" in result && this.#b.handleLocked === undefined) {
          throw new TypeError("a callback returned { lock } but the behaviour has no handleLocked");
        }
      } catch (e) {
        this.#stats.failures++;
        failure = { item, rec, error: e instanceof Error ? e : new Error(String(e)) };
        break;
      }
      const u = unpack(result);
      state = u.state;
      done.push(item);
      actions.push(...u.actions);
      if (
        replyId !== null && kind === 0 && !u.lock && (u.reply !== undefined || u.stop === undefined)
      ) {
        replies.push({ id: replyId, value: u.reply });
      }
      if (u.lock) {
        lockRec = [this.#id, this.#clock.now(), kind, msg, replyId];
        break;
      }
      if (u.stop !== undefined) {
        stop = { reason: u.stop };
        break;
      }
    }

    if (done.length === 0 && failure !== undefined) {
      return await this.#failed(failure.item, failure.rec, failure.error, sentinels, qcons);
    }

    // One commit: dequeue, new state, replies, maybe the lock.
    const checks: Check[] = [
      { key: K_STATE, versionstamp: loaded.versionstamp },
      { key: K_QCONS, versionstamp: qcons.versionstamp },
    ];
    const mutations: Mutation[] = [{ type: "sum", key: K_QCONS, value: 1n }];
    const local: { waiter: Waiter; value: unknown }[] = [];
    for (const item of done) mutations.push({ type: "delete", key: item.key });
    mutations.push(qlenAdd(-done.length));
    for (const r of replies) {
      const waiter = this.#reply(r.id, sentinels.get(r.id), 1, r.value, checks, mutations);
      if (waiter !== undefined) local.push({ waiter, value: r.value });
    }
    if (lockRec !== undefined) {
      checks.push({ key: K_LOCK, versionstamp: null });
      mutations.push({ type: "set", key: K_LOCK, value: enc(lockRec) });
    }
    const vs = await this.#commitWithState(state, loaded, checks, mutations);
    if (vs === undefined) return true;
    this.#stats.commits++;
    this.#stats.processed += done.length;
    for (const l of local) l.waiter.resolve(l.value);
    await this.#runActions(actions, state);
    if (lockRec !== undefined) await this.#runLocked(lockRec);
    if (stop !== undefined) void this.#halt(stop.reason);
    return true;
  }

  /** A callback threw on the first message of a batch: count the attempt, dead-letter at the limit. */
  async #failed(
    item: Entry,
    rec: QueueRecord,
    error: Error,
    sentinels: Map<string, Entry>,
    qcons: Entry,
  ): Promise<boolean | number> {
    const attempts = rec[3] + 1;
    this.#log({
      level: "warn",
      node: this.#tenant.join("/"),
      msg: `callback failed (attempt ${attempts} of ${this.#maxAttempts})`,
      error,
    });
    const checks: Check[] = [{ key: K_QCONS, versionstamp: qcons.versionstamp }];
    const bump: Mutation = { type: "sum", key: K_QCONS, value: 1n };
    if (attempts < this.#maxAttempts) {
      const r = await this.#db.commit(checks, [bump, {
        type: "set",
        key: item.key,
        value: enc([rec[0], rec[1], rec[2], attempts] satisfies QueueRecord),
      }]);
      return r.ok ? Math.min(1000, 10 * 2 ** attempts) : true;
    }
    const errInfo = { name: error.name, message: error.message.slice(0, 4096) };
    const mutations: Mutation[] = [
      bump,
      { type: "delete", key: item.key },
      qlenAdd(-1),
      {
        type: "appendOrdered",
        prefix: K_DLQ,
        value: enc([[rec[0], rec[1], null, attempts], errInfo, this.#clock.now()]),
      },
    ];
    const replyId = rec[2];
    const dead = [attempts, errInfo.name, errInfo.message];
    const waiter = replyId === null
      ? undefined
      : this.#reply(replyId, sentinels.get(replyId), 2, dead, checks, mutations);
    const r = await this.#db.commit(checks, mutations);
    if (r.ok) {
      this.#stats.deadLettered++;
      waiter?.reject(new DeadLetterError(attempts, errInfo.name, errInfo.message));
    }
    return true;
  }

  /** Runs `handleLocked` outside any transaction, then commits its result and releases the lock. */
  async #runLocked(lockRec: LockRecord): Promise<unknown> {
    this.#locking = true;
    try {
      let rec = lockRec;
      for (let round = 0; round < 1000; round++) {
        const [, , kind, msg, replyId] = rec;
        const loaded = await this.#load();
        const event: LockedEvent = kind === 0
          ? { type: "call", from: { id: replyId ?? randomId() } }
          : kind === 1
          ? { type: "cast" }
          : { type: "info" };
        const result = await this.#b.handleLocked!(event, msg, loaded.state);
        const u = unpack(result);
        const lockNow = await this.#db.get(K_LOCK);
        if (lockNow.value === null || dec<LockRecord>(lockNow)[0] !== this.#id) {
          this.#log({
            level: "warn",
            node: this.#tenant.join("/"),
            msg: "lost the lock (timed out?); result dropped",
          });
          return undefined;
        }
        const checks: Check[] = [
          { key: K_LOCK, versionstamp: lockNow.versionstamp },
          { key: K_STATE, versionstamp: loaded.versionstamp },
        ];
        const mutations: Mutation[] = [];
        let local: { waiter: Waiter; value: unknown } | undefined;
        if (u.lock) {
          rec = [this.#id, this.#clock.now(), kind, msg, replyId];
          mutations.push({ type: "set", key: K_LOCK, value: enc(rec) });
        } else {
          mutations.push({ type: "delete", key: K_LOCK });
          if (replyId !== null && kind === 0) {
            const sentinel = await this.#db.get([K_REPLY, replyId]);
            const waiter = this.#reply(replyId, sentinel, 1, u.reply, checks, mutations);
            if (waiter !== undefined) local = { waiter, value: u.reply };
          }
        }
        const vs = await this.#commitWithState(u.state, loaded, checks, mutations);
        // A conflict: the state moved (a priority request); run handleLocked again on the new state.
        if (vs === undefined) continue;
        local?.waiter.resolve(local.value);
        await this.#runActions(u.actions, u.state);
        if (u.stop !== undefined) void this.#halt(u.stop);
        if (!u.lock) return u.reply;
      }
      throw new StorageError("handleLocked kept returning { lock } for 1000 rounds");
    } finally {
      this.#locking = false;
    }
  }
}

function unpack<S, R>(result: CallResult<S, R> | NoReplyResult<S>): {
  state: S;
  reply: R | undefined;
  actions: Action<S>[];
  lock: boolean;
  stop: unknown;
} {
  if (typeof result !== "object" || result === null) {
    throw new TypeError("a callback must return an object");
  }
  if ("lock" in result) {
    return { state: result.lock, reply: undefined, actions: [], lock: true, stop: undefined };
  }
  if (!("state" in result)) throw new TypeError("a callback result needs a state (or lock)");
  const r = result as { state: S; reply?: R; actions?: Action<S>[]; stop?: unknown };
  return {
    state: r.state,
    reply: r.reply,
    actions: r.actions ?? [],
    lock: false,
    stop: "stop" in r ? (r.stop ?? "normal") : undefined,
  };
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
