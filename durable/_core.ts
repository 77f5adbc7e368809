// What every part of a durable-server handle shares: its options, storage
// view, state store, waiting callers, and the helpers that bound callbacks,
// commit a result state, answer calls and detect a kill. Module-private.

import type { Clock, TimerId } from "../base/clock.ts";
import { encodeForWire } from "../base/codec.ts";
import type { Logger, LogLevel } from "../base/logger.ts";
import type { Action, DurableBehaviour, DurableServerStats } from "./behaviour.ts";
import {
  CallbackTimeoutError,
  DeadLetterError,
  DurableKilledError,
  DurableStoppedError,
} from "./errors.ts";
import { dec, enc, equalBytes, K_EPOCH, K_REPLY, randomId, type ReplyRecord } from "./_records.ts";
import type { Loaded, StateStore, StateWrite } from "./_state.ts";
import type { Check, Entry, Key, Mutation, Storage } from "./storage.ts";
import { commitCost } from "./limits.ts";

export interface Waiter {
  resolve: (v: unknown) => void;
  reject: (e: unknown) => void;
}

/** The options of a handle after defaults. */
export interface Resolved {
  consume: boolean;
  batch: number;
  lockTimeoutMs: number;
  leaseTimeoutMs: number;
  callbackTimeoutMs: number;
  maxAttempts: number;
  callTimeoutMs: number;
  replyTtlMs: number;
  gcIntervalMs: number;
  conflictRetriesMax: number;
}

/** A reply to write in a commit: ok, dead-lettered, or stopped without a reply. */
export type ReplyStatus = 1 | 2 | 3;

export class Core<S, Call, Cast, Info, Reply> {
  readonly b: DurableBehaviour<S, Call, Cast, Info, Reply>;
  readonly db: Storage;
  readonly clock: Clock;
  readonly id = randomId();
  readonly o: Resolved;
  readonly stats: DurableServerStats;
  readonly state: StateStore<S>;
  readonly waiters = new Map<string, Waiter>();
  readonly stopCtl = new AbortController();
  readonly tenantName: string;
  readonly #log: Logger;
  /** Versionstamp of the epoch key this handle started in; every commit checks it. */
  epochVs: string | null = null;
  /**
   * What the garbage collector saw unreferenced, and since when on this
   * handle's monotonic clock (key: a state generation or a reply id). The GC
   * judges age only from this: never from another process's clock.
   */
  readonly gcSeen = new Map<string, number>();
  /** Called once the handle learns the server was killed (by another handle). */
  onKilled: (e: DurableKilledError) => void = () => {};

  constructor(
    b: DurableBehaviour<S, Call, Cast, Info, Reply>,
    db: Storage,
    clock: Clock,
    log: Logger,
    o: Resolved,
    stats: DurableServerStats,
    state: StateStore<S>,
    tenantName: string,
  ) {
    this.b = b;
    this.db = db;
    this.clock = clock;
    this.#log = log;
    this.o = o;
    this.stats = stats;
    this.state = state;
    this.tenantName = tenantName;
  }

  log(level: LogLevel, msg: string, error?: unknown): void {
    this.#log({ level, node: this.tenantName, msg, ...(error === undefined ? {} : { error }) });
  }

  get stopped(): boolean {
    return this.stopCtl.signal.aborted;
  }

  epochCheck(): Check {
    return { key: K_EPOCH, versionstamp: this.epochVs };
  }

  /**
   * After a commit failed its checks: if the epoch changed (the server was
   * killed), the handle stops and this throws `DurableKilledError`.
   */
  async assertAlive(): Promise<void> {
    const e = await this.db.get(K_EPOCH);
    if (e.versionstamp === this.epochVs) return;
    const err = new DurableKilledError("the server was killed (by another handle)");
    this.onKilled(err);
    throw err;
  }

  /**
   * Runs one callback, bounded by `callbackTimeoutMs`, by the handle's stop,
   * and by `signal` (a lease or lock lost). An abandoned callback's result,
   * if it ever comes, is ignored.
   */
  invoke<T>(what: string, fn: () => T | Promise<T>, signal?: AbortSignal): Promise<T> {
    let value: T | Promise<T>;
    try {
      value = fn();
    } catch (e) {
      return Promise.reject(e);
    }
    if (!(value instanceof Promise)) return Promise.resolve(value);
    return new Promise<T>((resolve, reject) => {
      const stop = this.stopCtl.signal;
      if (stop.aborted) return reject(new DurableStoppedError(stop.reason));
      if (signal?.aborted) return reject(signal.reason);
      const ms = this.o.callbackTimeoutMs;
      const timer: TimerId | undefined = Number.isFinite(ms)
        ? this.clock.setTimeout(() => {
          done();
          this.stats.timeouts++;
          reject(new CallbackTimeoutError(what, ms));
        }, ms)
        : undefined;
      const done = () => {
        if (timer !== undefined) this.clock.clearTimeout(timer);
        stop.removeEventListener("abort", onStop);
        signal?.removeEventListener("abort", onSignal);
      };
      const onStop = () => {
        done();
        reject(new DurableStoppedError(stop.reason));
      };
      const onSignal = () => {
        done();
        reject(signal!.reason);
      };
      stop.addEventListener("abort", onStop, { once: true });
      signal?.addEventListener("abort", onSignal, { once: true });
      (value as Promise<T>).then((v) => {
        done();
        resolve(v);
      }, (e) => {
        done();
        reject(e);
      });
    });
  }

  /** Runs actions after a commit, each bounded; a failing action is logged. */
  async runActions(actions: Action<S>[], state: S): Promise<void> {
    for (const a of actions) {
      try {
        await this.invoke("an action", () => a(state));
      } catch (e) {
        if (this.stopped) return;
        this.log("error", "action failed", e);
      }
    }
  }

  /**
   * Writes `state` (unless unchanged, or with `force`) together with `checks`
   * and `mutations` in one commit (with the epoch check). Returns the
   * versionstamp, or undefined on a conflict (after discarding what was
   * written ahead). Throws when the result cannot be committed (encoding,
   * size, key lengths) and `DurableKilledError` when the server was killed.
   */
  async commitWithState(
    state: S,
    loaded: Loaded<S>,
    checks: Check[],
    mutations: Mutation[],
    options: { force?: boolean; header?: Entry } = {},
  ): Promise<string | undefined> {
    const bytes = encodeForWire(state, "state");
    let write: StateWrite | undefined;
    if (options.force || !equalBytes(bytes, loaded.bytes)) {
      const beside = commitCost(
        [...checks, this.epochCheck()],
        mutations,
        (k) => this.state.keyBytes(k),
      );
      const old = options.header === undefined
        ? loaded.header
        : options.header.value === null
        ? null
        : dec<[string, number, number, Uint8Array?]>(options.header);
      write = await this.state.prepare(state, bytes, old, {
        bytes: beside.bytes,
        keyBytes: beside.keyBytes,
        mutations: mutations.length,
      });
    }
    let r;
    try {
      r = await this.db.commit(
        [...checks, this.epochCheck()],
        write ? [...mutations, ...write.mutations] : mutations,
      );
    } catch (e) {
      if (write !== undefined) await this.state.discard(write);
      throw e;
    }
    if (!r.ok) {
      if (write !== undefined) await this.state.discard(write);
      this.stats.conflicts++;
      this.state.invalidate();
      await this.assertAlive();
      return undefined;
    }
    if (write !== undefined) {
      this.state.remember(state, r.versionstamp, write);
      await this.state.cleanup(write);
    }
    return r.versionstamp;
  }

  /**
   * Adds to `mutations` what answers call `id`: nothing when its caller gave
   * up (no reply key); when the caller waits in this handle, the removal of its
   * key (the waiter is returned, to settle after the commit); else the reply
   * record. Either way the key is checked, so a caller that gives up meanwhile
   * makes the commit retry without its reply.
   */
  reply(
    id: string,
    sentinel: Entry | undefined,
    status: ReplyStatus,
    value: unknown,
    checks: Check[],
    mutations: Mutation[],
  ): Waiter | undefined {
    if (sentinel === undefined || sentinel.value === null) return undefined;
    checks.push({ key: [K_REPLY, id], versionstamp: sentinel.versionstamp });
    const waiter = this.waiters.get(id);
    if (waiter !== undefined) {
      mutations.push({ type: "delete", key: [K_REPLY, id] });
      return waiter;
    }
    const [, , expiresAt, lifetimeMs] = dec<ReplyRecord>(sentinel);
    const record: ReplyRecord = lifetimeMs === undefined
      ? [status, value, expiresAt]
      : [status, value, expiresAt, lifetimeMs];
    mutations.push({ type: "set", key: [K_REPLY, id], value: enc(record, "reply") });
    return undefined;
  }

  /** Settles a local waiter the way a reply record of `status` would. */
  settle(waiter: Waiter, status: ReplyStatus, value: unknown, cause?: unknown): void {
    if (status === 1) waiter.resolve(value);
    else if (status === 3) waiter.reject(new DurableStoppedError(value));
    else {
      const [attempts, name, message] = value as [number, string, string];
      waiter.reject(
        new DeadLetterError(attempts, name, message, cause === undefined ? undefined : { cause }),
      );
    }
  }

  /** The reply keys of the calls among `ids`, read in one snapshot. */
  async sentinels(ids: string[]): Promise<Map<string, Entry>> {
    const out = new Map<string, Entry>();
    if (ids.length === 0) return out;
    for (const e of await this.db.getMany(ids.map((id) => [K_REPLY, id] as Key))) {
      if (e.value !== null) out.set(e.key[1] as string, e);
    }
    return out;
  }
}
