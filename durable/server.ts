/**
 * Durable servers: gen_server-style servers whose state and message queue live
 * in a {@linkcode Storage}, so that they outlive any process (dgen_server's
 * semantics, and more).
 *
 * A consumer takes up to `consumeBatch` messages from the durable FIFO queue,
 * runs the callbacks, and writes the new state, the replies and the dequeue in
 * one atomic commit: a crash before the commit leaves the state unchanged and
 * the messages queued (at-least-once delivery, exactly-once effect on state).
 * Every failure ends: a callback that throws, hangs past `callbackTimeoutMs`,
 * or returns what cannot be committed is a failed attempt, and after
 * `maxAttempts` the message is dead-lettered. Locks and leases are decided
 * from what storage shows, never by comparing clocks of different processes.
 *
 * @module
 */

import { systemClock, type TimerId } from "../base/clock.ts";
import { consoleLogger } from "../base/logger.ts";
import { numberOption, timeoutOption } from "../base/options.ts";
import type {
  CallResult,
  DeadLetter,
  DurableBehaviour,
  DurableServerOptions,
  DurableServerStats,
  DurableServerStatus,
  From,
  NoReplyResult,
} from "./behaviour.ts";
import { encRecord, InlineCalls, watchReply, withTimeout } from "./_calls.ts";
import { Consumer } from "./_consumer.ts";
import { LockRunner } from "./_locked.ts";
import { collectGarbage } from "./_gc.ts";
import { Core, type Resolved } from "./_core.ts";
import { DurableKilledError, DurableStoppedError, DurableTimeoutError } from "./errors.ts";
import {
  dec,
  enc,
  K_DLQ,
  K_EPOCH,
  K_LEASE,
  K_LOCK,
  K_QLEN,
  K_QUEUE,
  K_QV,
  K_REPLY,
  K_STATE,
  type LeaseRecord,
  type LockRecord,
  qlenAdd,
  type QueueRecord,
  randomId,
  type ReplyRecord,
  Staleness,
  TENANT_MARK,
  unpack,
} from "./_records.ts";
import { type Header, type Loaded, StateStore } from "./_state.ts";
import { type Check, type Entry, type Key, type Mutation, StorageError } from "./storage.ts";
import { encodeKey } from "./keys.ts";
import { subspace } from "./atomic.ts";

export * from "./behaviour.ts";

/**
 * The key prefix under which the durable server of `tenant` keeps all its keys
 * (the tenant and a reserved part): list or back it up with this prefix.
 *
 * @example
 * ```ts
 * import { durableKeyPrefix, MemoryStorage } from "@murmur/murmur/durable";
 * await using db = new MemoryStorage();
 * console.log((await db.list({ prefix: durableKeyPrefix(["counters", "c1"]) })).length); // 0
 * ```
 */
export function durableKeyPrefix(tenant: Key): Key {
  return [...tenant, TENANT_MARK];
}

/** A caller whose handle consumes waits this long for a local answer before watching its reply key. */
const REMOTE_REPLY_WATCH_DELAY_MS = 25;
/** Default largest encoded state. */
export const DEFAULT_STATE_BYTES_MAX = 8 * 1024 * 1024;

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
  readonly #c: Core<S, Call, Cast, Info, Reply>;
  readonly #tenant: Key;
  #consumer: Consumer<S, Call, Cast, Info, Reply> | undefined;
  /** Runs handleLocked for locks a non-consuming handle's priority requests took. */
  #locks: LockRunner<S, Call, Cast, Info, Reply> | undefined;
  readonly #inline: InlineCalls<S, Call, Cast, Info, Reply>;
  /** Enqueues of calls that timed out before their enqueue was done. */
  readonly #late = new Set<Promise<void>>();
  #stopReason: unknown;
  #gcTimer: TimerId | undefined;
  readonly #stopped = Promise.withResolvers<unknown>();

  private constructor(
    behaviour: DurableBehaviour<S, Call, Cast, Info, Reply>,
    options: DurableServerOptions,
  ) {
    this.#tenant = options.tenant;
    const clock = options.clock ?? systemClock;
    const o: Resolved = {
      consume: options.consume ?? true,
      batch: numberOption("consumeBatch", options.consumeBatch, 1),
      lockTimeoutMs: timeoutOption("lockTimeoutMs", options.lockTimeoutMs, 30_000),
      leaseTimeoutMs: numberOption("leaseTimeoutMs", options.leaseTimeoutMs, 30_000),
      callbackTimeoutMs: timeoutOption("callbackTimeoutMs", options.callbackTimeoutMs, 60_000),
      maxAttempts: numberOption("maxAttempts", options.maxAttempts, 5),
      callTimeoutMs: timeoutOption("callTimeoutMs", options.callTimeoutMs, 5000),
      replyTtlMs: numberOption("replyTtlMs", options.replyTtlMs, 60_000, 0),
      gcIntervalMs: numberOption("gcIntervalMs", options.gcIntervalMs, 30_000),
      conflictRetriesMax: numberOption("conflictRetriesMax", options.conflictRetriesMax, 100),
    };
    if (o.batch > 1000 || !Number.isInteger(o.batch)) {
      throw new RangeError(`consumeBatch must be an integer in [1, 1000], got ${o.batch}`);
    }
    const stateBytesMax = numberOption(
      "stateBytesMax",
      options.stateBytesMax,
      DEFAULT_STATE_BYTES_MAX,
      1024,
    );
    const prefix: Key = [...options.tenant, TENANT_MARK];
    const db = subspace(options.storage, prefix);
    const stats: DurableServerStats = {
      processed: 0,
      commits: 0,
      conflicts: 0,
      cacheHits: 0,
      cacheMisses: 0,
      failures: 0,
      timeouts: 0,
      deadLettered: 0,
      takeovers: 0,
      repliesCollected: 0,
      chunksRemoved: 0,
    };
    const state = new StateStore<S>(
      db,
      encodeKey(prefix).length,
      stateBytesMax,
      clock,
      options.cache ?? true,
      stats,
    );
    this.#c = new Core(
      behaviour,
      db,
      clock,
      options.logger ?? consoleLogger,
      o,
      stats,
      state,
      options.tenant.map(String).join("/"),
    );
    this.#inline = new InlineCalls(this.#c);
  }

  /**
   * Starts a handle: initialises the durable state if there is none (or with
   * `reset`), then, with `consume`, starts taking messages from the queue.
   *
   * @throws {TypeError} on an invalid behaviour, storage or tenant (a tenant
   *   may not contain the reserved key part `"\u0000murmur.durable"`).
   * @throws {CallbackTimeoutError} `init` did not return within `callbackTimeoutMs`.
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
    if (options.tenant.includes(TENANT_MARK)) {
      throw new TypeError(
        "options.tenant may not contain the reserved key part of durable servers",
      );
    }
    const server = new DurableServer(behaviour, options);
    await server.#init(initArg, options.reset ?? false);
    // From now on, a changed epoch means the server was killed: this handle stops.
    server.#c.onKilled = (e) => {
      for (const w of server.#c.waiters.values()) w.reject(e);
      server.#c.waiters.clear();
      void server.#halt(e);
    };
    if (server.#c.o.consume) {
      server.#consumer = new Consumer(server.#c, (reason) => void server.#halt(reason));
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
    return { ...this.#c.stats };
  }

  /**
   * What the server's storage holds now, read in one snapshot: queue length,
   * dead letters (counted up to `deadLettersLimit`, default 1000), who holds
   * the lock and the lease, and this handle's counters. For dashboards.
   *
   * @example
   * ```ts
   * import { type DurableBehaviour, DurableServer, MemoryStorage } from "@murmur/murmur/durable";
   * const Counter: DurableBehaviour<number, "get", number, never, number> = {
   *   init: () => ({ state: 0 }),
   *   handleCall: (_m, _from, n) => ({ reply: n, state: n }),
   *   handleCast: (add, n) => ({ state: n + add }),
   * };
   * await using storage = new MemoryStorage();
   * await using srv = await DurableServer.start(Counter, null, { storage, tenant: ["c"] });
   * const s = await srv.status();
   * console.log(s.queueLength, s.deadLetters, s.lock); // 0 0 undefined
   * ```
   */
  async status(deadLettersLimit = 1000): Promise<DurableServerStatus> {
    const c = this.#c;
    const [qlen, lock, lease] = await c.db.getMany([K_QLEN, K_LOCK, K_LEASE]) as [
      Entry,
      Entry,
      Entry,
    ];
    const dlq = await c.db.list({ prefix: K_DLQ }, { limit: deadLettersLimit + 1 });
    const owner = (e: Entry) => e.value === null ? undefined : dec<LockRecord | LeaseRecord>(e)[0];
    const lockOwner = owner(lock), leaseOwner = owner(lease);
    const n = typeof qlen.value === "bigint" ? BigInt.asIntN(64, qlen.value) : 0n;
    return {
      tenant: this.#tenant,
      handle: c.id,
      queueLength: Number(n < 0n ? 0n : n),
      deadLetters: Math.min(dlq.length, deadLettersLimit),
      deadLettersMore: dlq.length > deadLettersLimit,
      lock: lockOwner === undefined ? undefined : { owner: lockOwner, mine: lockOwner === c.id },
      lease: leaseOwner === undefined
        ? undefined
        : { owner: leaseOwner, mine: leaseOwner === c.id },
      stats: this.stats(),
    };
  }

  /**
   * Sends a request through the durable queue and waits for the reply.
   *
   * @throws {DurableTimeoutError} no reply within `timeoutMs` (the request may still be processed).
   * @throws {DeadLetterError} the request failed `maxAttempts` times.
   * @throws {DurableStoppedError} the callback answered `{ stop }` without a reply.
   * @throws {DurableKilledError} the server was killed.
   * @throws {TypeError} the message cannot cross the wire (with its path).
   */
  async call(msg: Call, options: { timeoutMs?: number } = {}): Promise<Reply> {
    this.#assertRunning();
    const c = this.#c;
    const timeoutMs = timeoutOption("timeoutMs", options.timeoutMs, c.o.callTimeoutMs);
    const id = randomId();
    const started = c.clock.now();
    const record = encRecord([0, msg, id, 0], msg);
    if (c.o.consume && !this.#consumer?.locking) {
      const inline = await withTimeout(this.#inline.run(msg, id), c, timeoutMs);
      if (inline.done) return inline.reply;
    }
    let remainingMs = Math.max(1, timeoutMs - (c.clock.now() - started));
    const replyKey: Key = [K_REPLY, id];
    const waiter = Promise.withResolvers<unknown>();
    c.waiters.set(id, waiter);
    const lifetimeMs = (Number.isFinite(remainingMs) ? remainingMs : 1e12) + c.o.replyTtlMs;
    const expires = c.clock.wallNow() + lifetimeMs;
    // The enqueue counts toward the timeout too; one that outlasts it goes on (stop waits for it),
    // and its reply key expires with the call.
    const enqueued = this.#enqueue([
      {
        type: "set",
        key: replyKey,
        value: enc([0, null, expires, lifetimeMs] satisfies ReplyRecord),
      },
      { type: "appendOrdered", prefix: K_QUEUE, value: record },
      { type: "sum", key: K_QV, value: 1n },
      qlenAdd(1),
    ]);
    try {
      await withTimeout(enqueued, c, remainingMs, timeoutMs);
    } catch (e) {
      c.waiters.delete(id);
      if (e instanceof DurableTimeoutError) this.#later(enqueued);
      throw e;
    }
    // A local consumer answers through `waiter`; another process's through the reply key,
    // which is watched only if the answer is not here soon (or at once without a local consumer).
    const watchCtl = new AbortController();
    let remote: Promise<void> | undefined;
    const startWatch = () => (remote = watchReply(c, replyKey, watchCtl.signal, waiter));
    const watchTimer = c.o.consume
      ? c.clock.setTimeout(startWatch, REMOTE_REPLY_WATCH_DELAY_MS)
      : undefined;
    if (!c.o.consume) startWatch();
    remainingMs = Math.max(1, timeoutMs - (c.clock.now() - started));
    try {
      return await withTimeout(waiter.promise, c, remainingMs, timeoutMs) as Reply;
    } catch (e) {
      if (e instanceof DurableTimeoutError) {
        // Abandon the reply: remove its key so that nothing is left behind. Not
        // awaited: the call ends at its timeout, whatever the storage does (a
        // storage that is down would hold it until its own request timeout).
        this.#later(c.db.commit([], [{ type: "delete", key: replyKey }]));
        watchCtl.abort();
        if (remote !== undefined) this.#later(remote);
        remote = undefined;
      }
      throw e;
    } finally {
      if (watchTimer !== undefined) c.clock.clearTimeout(watchTimer);
      c.waiters.delete(id);
      watchCtl.abort();
      await remote;
    }
  }

  /** Work a call left behind at its timeout: `stop()` waits for it. */
  #later(p: Promise<unknown>): void {
    const late: Promise<void> = p.then(() => {}, () => {}).finally(() => this.#late.delete(late));
    this.#late.add(late);
  }

  /**
   * Queues a message for `handleCast`. Resolves once it is durably queued.
   *
   * @throws {DurableKilledError} the server was killed.
   * @throws {TypeError} the message cannot cross the wire (with its path).
   */
  async cast(msg: Cast): Promise<void> {
    this.#assertRunning();
    await this.#enqueue([
      { type: "appendOrdered", prefix: K_QUEUE, value: encRecord([1, msg, null, 0], msg) },
      { type: "sum", key: K_QV, value: 1n },
      qlenAdd(1),
    ]);
  }

  /** Queues several casts atomically (all or none), in order. */
  async castBatch(msgs: readonly Cast[]): Promise<void> {
    this.#assertRunning();
    if (!Array.isArray(msgs)) throw new TypeError("castBatch takes an array");
    if (msgs.length === 0) return;
    await this.#enqueue([
      ...msgs.map((m): Mutation => ({
        type: "appendOrdered",
        prefix: K_QUEUE,
        value: encRecord([1, m, null, 0], m),
      })),
      { type: "sum", key: K_QV, value: 1n },
      qlenAdd(msgs.length),
    ]);
  }

  /** Commits an enqueue in this handle's epoch; a killed server rejects it. */
  async #enqueue(mutations: Mutation[]): Promise<void> {
    const c = this.#c;
    this.#inline.queued();
    for (let i = 0; i < 3; i++) {
      const r = await c.db.commit([c.epochCheck()], mutations);
      if (r.ok) return;
      await c.assertAlive();
    }
    throw new StorageError("enqueue kept failing its checks");
  }

  /**
   * Runs `handleCall` now, bypassing the queue and any lock (no ordering with
   * queued messages). Useful for snapshot reads. Errors of the callback are
   * thrown as they are.
   *
   * @throws {DurableTimeoutError} no answer within `timeoutMs`.
   *
   * @default `callTimeoutMs`
   */
  async priorityCall(msg: Call, options: { timeoutMs?: number } = {}): Promise<Reply> {
    this.#assertRunning();
    const c = this.#c;
    const timeoutMs = timeoutOption("timeoutMs", options.timeoutMs, c.o.callTimeoutMs);
    const from: From = { id: randomId() };
    return await withTimeout(
      this.#priority((s) => c.b.handleCall(msg, from, s), 0, msg, "handleCall"),
      c,
      timeoutMs,
    ) as Reply;
  }

  /** Runs `handleCast` now, bypassing the queue and any lock. */
  async priorityCast(msg: Cast): Promise<void> {
    this.#assertRunning();
    await this.#priority((s) => this.#c.b.handleCast(msg, s), 1, msg, "handleCast");
  }

  /** Runs `handleInfo` now (info messages are never queued). */
  async info(msg: Info): Promise<void> {
    this.#assertRunning();
    const h = this.#c.b.handleInfo;
    if (h === undefined) throw new TypeError("the behaviour has no handleInfo");
    await this.#priority((s) => h.call(this.#c.b, msg, s), 2, msg, "handleInfo");
  }

  async #priority(
    run: (
      state: S,
    ) => CallResult<S, Reply> | NoReplyResult<S> | Promise<CallResult<S, Reply> | NoReplyResult<S>>,
    kind: 0 | 1 | 2,
    msg: unknown,
    what: string,
  ): Promise<unknown> {
    const c = this.#c;
    for (let attempt = 0; attempt <= c.o.conflictRetriesMax; attempt++) {
      const loaded = await c.state.load();
      const u = unpack<S, Reply>(await c.invoke(what, () => run(loaded.state)), what);
      const mutations: Mutation[] = [];
      const checks: Check[] = [{ key: K_STATE, versionstamp: loaded.versionstamp }];
      let lockRec: LockRecord | undefined;
      if (u.lock) {
        if (c.b.handleLocked === undefined) {
          throw new TypeError("a callback returned { lock } but the behaviour has no handleLocked");
        }
        lockRec = [c.id, kind, msg, null, 0, 0];
        checks.push({ key: K_LOCK, versionstamp: null });
        mutations.push({ type: "set", key: K_LOCK, value: enc(lockRec, "msg") });
      }
      const vs = await c.commitWithState(u.state, loaded, checks, mutations);
      if (vs === undefined) continue;
      await c.runActions(u.actions, u.state);
      if (lockRec !== undefined) {
        const lock = await c.db.get(K_LOCK);
        if (lock.versionstamp === null) return undefined; // already released (a kill)
        // This handle runs handleLocked for the lock it took, consuming or not: the
        // caller gets its reply, and the queue moves on when it commits.
        if (this.#consumer !== undefined) {
          return await this.#consumer.runLocked(lockRec, lock.versionstamp);
        }
        this.#locks ??= new LockRunner(c, new Staleness(), (reason) => void this.#halt(reason));
        return await this.#locks.run(lockRec, lock.versionstamp);
      }
      if (u.stop !== undefined) {
        void this.#halt(u.stop);
        if (kind === 0 && u.reply === undefined) throw new DurableStoppedError(u.stop);
      }
      return u.reply;
    }
    throw new StorageError(`priority request kept conflicting (${c.o.conflictRetriesMax} retries)`);
  }

  /** The dead-letter queue, oldest first (at most `limit`, default 1000). */
  async deadLetters(limit = 1000): Promise<DeadLetter[]> {
    const es = await this.#c.db.list({ prefix: K_DLQ }, { limit });
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
    const c = this.#c;
    const letters = keys === undefined
      ? await c.db.list({ prefix: K_DLQ })
      : (await c.db.getMany(keys)).filter((e) => e.value !== null);
    let moved = 0;
    const per = Math.max(1, Math.floor((c.db.limits.mutationsMax - 2) / 2));
    for (let i = 0; i < letters.length; i += per) {
      const group = letters.slice(i, i + per);
      const mutations: Mutation[] = [];
      const checks: Check[] = [c.epochCheck()];
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
      if ((await c.db.commit(checks, mutations)).ok) moved += group.length;
      else await c.assertAlive();
    }
    return moved;
  }

  /**
   * Deletes the server: all durable state, the queue, the dead letters, and
   * the reply keys of waiting calls (which then fail with
   * {@linkcode DurableKilledError}). Only this server's keys: nested tenants
   * are other servers. Every other handle of it then rejects requests with
   * `DurableKilledError` and stops. This handle stops with `reason`.
   */
  async kill(reason: unknown = "killed"): Promise<void> {
    const c = this.#c;
    const killed = new DurableKilledError(reason);
    for (const w of c.waiters.values()) w.reject(killed);
    c.waiters.clear();
    await this.#halt(reason);
    const per = c.db.limits.mutationsMax;
    // The epoch first: other handles stop at once, before the rest goes.
    await c.db.commit([], [{ type: "delete", key: K_EPOCH }]);
    for (let i = 0; i < 100_000; i++) {
      const es = await c.db.list({ prefix: [] }, { limit: per });
      if (es.length === 0) break;
      await c.db.commit([], es.map((e): Mutation => ({ type: "delete", key: e.key })));
    }
  }

  /**
   * Stops this handle (its consumer and timers); the durable server lives on.
   * Returns promptly even while a callback hangs (the callback is abandoned,
   * its attempt never committed).
   */
  async stop(reason: unknown = "normal"): Promise<void> {
    const stopped = new DurableStoppedError(reason);
    for (const w of this.#c.waiters.values()) w.reject(stopped);
    this.#c.waiters.clear();
    await this.#halt(reason);
  }

  /** Same as `stop()`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.stop();
  }

  /** Runs the GC now (it also runs every `gcIntervalMs`); returns how many keys it removed. */
  collectGarbage(): Promise<number> {
    return collectGarbage(this.#c);
  }

  // ------------------------------------------------------------- internals

  async #halt(reason: unknown): Promise<void> {
    const c = this.#c;
    if (!c.stopCtl.signal.aborted) {
      this.#stopReason = reason;
      c.stopCtl.abort(reason);
      if (this.#gcTimer !== undefined) c.clock.clearTimeout(this.#gcTimer);
    }
    await this.#consumer?.loop;
    await Promise.all(this.#late);
    this.#stopped.resolve(this.#stopReason);
  }

  #assertRunning(): void {
    if (!this.#c.stopCtl.signal.aborted) return;
    if (this.#stopReason instanceof DurableKilledError) throw this.#stopReason;
    throw new DurableStoppedError(this.#stopReason);
  }

  async #init(arg: unknown, reset: boolean): Promise<void> {
    const c = this.#c;
    for (let round = 0; round < 10; round++) {
      const [header, epoch] = (await c.db.getMany([K_STATE, K_EPOCH])) as [Entry, Entry];
      if (header.value !== null && !reset && epoch.value !== null) {
        c.epochVs = epoch.versionstamp;
        return;
      }
      let state: S;
      if (header.value !== null && !reset) {
        // State without an epoch (written by an older release): keep the state, add the epoch.
        const r = await c.db.commit([{ key: K_EPOCH, versionstamp: null }], [
          { type: "set", key: K_EPOCH, value: enc(randomId()) },
        ]);
        if (r.ok) c.epochVs = r.versionstamp;
        continue;
      } else {
        const init = await c.invoke("init", () => c.b.init(arg));
        if (typeof init !== "object" || init === null || !("state" in init)) {
          throw new TypeError("init must return { state }");
        }
        state = init.state;
      }
      const old = header.value === null ? null : dec<Header>(header);
      const mutations: Mutation[] = [];
      if (epoch.value === null) {
        mutations.push({ type: "set", key: K_EPOCH, value: enc(randomId()) });
      }
      c.epochVs = epoch.versionstamp;
      const loaded: Loaded<S> = {
        state,
        versionstamp: header.versionstamp,
        header: old,
        bytes: new Uint8Array(0),
      };
      const vs = await c.commitWithState(
        state,
        loaded,
        [{ key: K_STATE, versionstamp: header.versionstamp }],
        mutations,
        { force: true },
      ).catch((e) => {
        if (e instanceof DurableKilledError) return undefined; // no epoch yet: not a kill
        throw e;
      });
      if (vs !== undefined) {
        if (epoch.value === null) c.epochVs = vs;
        return;
      }
      if (reset) throw new StorageError("another handle changed the state during reset; try again");
      // Without reset, losing this race means another handle initialised it first: use theirs.
    }
    throw new StorageError("could not initialise the durable state (kept conflicting)");
  }

  #scheduleGc(): void {
    const c = this.#c;
    this.#gcTimer = c.clock.setTimeout(() => {
      void collectGarbage(this.#c).catch((e) => c.log("warn", "garbage collection failed", e))
        .finally(() => {
          if (!c.stopCtl.signal.aborted) this.#scheduleGc();
        });
    }, c.o.gcIntervalMs);
  }
}
