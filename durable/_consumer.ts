// The consumer of a durable-server handle: takes messages off the queue, runs
// the callbacks (bounded), and commits state, replies and the dequeue at once.
// Every failure ends: a throw, a timeout, or a result that cannot be committed
// is a failed attempt, and past maxAttempts the message is dead-lettered.
// Leases and locks are decided from what storage shows: a record renewed by
// its holder's commits, taken over only when its versionstamp has not changed
// for the timeout on this process's own monotonic clock. Module-private.

import type { TimerId } from "../base/clock.ts";
import type { Action, CallResult, NoReplyResult } from "./behaviour.ts";
import type { Core, Waiter } from "./_core.ts";
import { errorOf, Holding, isResultError, renew } from "./_holding.ts";
import { LockRunner } from "./_locked.ts";
import type { Loaded } from "./_state.ts";
import { DurableKilledError } from "./errors.ts";
import {
  dec,
  enc,
  K_DLQ,
  K_EPOCH,
  K_LEASE,
  K_LOCK,
  K_QCONS,
  K_QUEUE,
  K_QV,
  K_REPLY,
  K_STATE,
  type LeaseRecord,
  type LockRecord,
  qlenAdd,
  type QueueRecord,
  randomId,
  Staleness,
  unpack,
  type Unpacked,
} from "./_records.ts";
import type { Check, Entry, Mutation } from "./storage.ts";

/** A consumer whose callbacks run this long takes a lease on its batch. */
const LEASE_AFTER_MS_MAX = 250;

export class Consumer<S, Call, Cast, Info, Reply> {
  readonly #c: Core<S, Call, Cast, Info, Reply>;
  readonly #seen = new Staleness();
  /** After a batch whose result could not be committed: one message at a time, to find it. */
  #single = false;
  readonly loop: Promise<void>;
  readonly #halt: (reason: unknown) => void;
  readonly #locks: LockRunner<S, Call, Cast, Info, Reply>;

  constructor(core: Core<S, Call, Cast, Info, Reply>, halt: (reason: unknown) => void) {
    this.#c = core;
    this.#halt = halt;
    this.#locks = new LockRunner(core, this.#seen, halt);
    this.loop = this.#run();
  }

  get locking(): boolean {
    return this.#locks.running;
  }

  async #run(): Promise<void> {
    const c = this.#c;
    const signal = c.stopCtl.signal;
    const wake = c.db.watch([K_QV, K_LOCK, K_LEASE, K_EPOCH], signal)[Symbol.asyncIterator]();
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
          if (e instanceof DurableKilledError) {
            this.#halt(e);
            break;
          }
          c.log("warn", "consumer error (storage), retrying", e);
          c.state.invalidate();
          backoff = Math.min(1000, backoff * 2 + 10);
          progressed = backoff;
        }
        if (progressed === true) continue;
        const waitMs = typeof progressed === "number" ? progressed : undefined;
        let timer: TimerId | undefined;
        const deadline = waitMs === undefined ? undefined : new Promise<void>((r) => {
          timer = c.clock.setTimeout(r, waitMs);
        });
        const stopped = new Promise<void>((r) => {
          if (signal.aborted) r();
          else signal.addEventListener("abort", () => r(), { once: true });
        });
        pendingWake ??= wake.next().then(() => (pendingWake = undefined));
        await Promise.race([pendingWake, stopped, ...(deadline ? [deadline] : [])]);
        if (timer !== undefined) c.clock.clearTimeout(timer);
      }
    } finally {
      await wake.return?.();
    }
  }

  /** Progress (true), nothing to do (false), or ms to wait before looking again. */
  async #consumeOnce(): Promise<boolean | number> {
    if (this.#locks.running) return false;
    const c = this.#c;
    const [lock, qcons, lease, epoch] =
      (await c.db.getMany([K_LOCK, K_QCONS, K_LEASE, K_EPOCH])) as [
        Entry,
        Entry,
        Entry,
        Entry,
      ];
    if (epoch.versionstamp !== c.epochVs) {
      throw new DurableKilledError("the server was killed (by another handle)");
    }
    const now = c.clock.now();
    if (lock.value !== null) return await this.#locks.onLock(lock, now);
    this.#seen.forget("lock");
    let leaseVs: string | null = null;
    if (lease.value !== null) {
      const [owner] = dec<LeaseRecord>(lease);
      if (
        owner !== c.id && !this.#seen.stale("lease", lease.versionstamp!, now, c.o.leaseTimeoutMs)
      ) {
        return this.#seen.remaining("lease", now, c.o.leaseTimeoutMs) + 1;
      }
      if (owner !== c.id) {
        c.stats.takeovers++;
        c.log("warn", "taking over the lease of a consumer that stopped renewing it");
      }
      leaseVs = lease.versionstamp;
    } else this.#seen.forget("lease");
    // A message costs up to two mutations (its dequeue, its reply); leave room for the state.
    const fit = Math.max(1, Math.floor((c.db.limits.mutationsMax - 8) / 2));
    const batch = this.#single ? 1 : Math.min(c.o.batch, fit);
    const items = await c.db.list({ prefix: K_QUEUE }, { limit: batch });
    if (items.length === 0) {
      this.#single = false;
      return false;
    }
    return await this.#process(items, qcons, leaseVs);
  }

  /** Runs a batch's callbacks and commits what they did. */
  async #process(items: Entry[], qcons: Entry, leaseVs: string | null): Promise<boolean | number> {
    const c = this.#c;
    const loaded = await c.state.load();
    const recs = items.map((e) => dec<QueueRecord>(e));
    const sentinels = await c.sentinels(
      recs.map((r) => r[2]).filter((id): id is string => id !== null),
    );
    // Take a lease if the callbacks run for a while, so that other consumers wait.
    let held: Holding | undefined;
    const attempt = new AbortController();
    const leaseTimer = c.clock.setTimeout(() => {
      void this.#takeLease(leaseVs, qcons).then((h) => {
        if (attempt.signal.aborted) {
          h?.ctl.abort(new Error("released"));
          return;
        }
        if (h === undefined) attempt.abort(new Error("another consumer holds the lease"));
        else {
          held = h;
          h.ctl.signal.addEventListener("abort", () => attempt.abort(h.ctl.signal.reason), {
            once: true,
          });
        }
      });
    }, Math.min(LEASE_AFTER_MS_MAX, c.o.leaseTimeoutMs / 4));
    try {
      return await this.#runBatch(
        items,
        recs,
        loaded,
        sentinels,
        qcons,
        leaseVs,
        attempt,
        () => held,
      );
    } finally {
      c.clock.clearTimeout(leaseTimer);
      attempt.abort(new Error("done"));
      if (held !== undefined) {
        held.ctl.abort(new Error("released"));
        if (held.timer !== undefined) c.clock.clearTimeout(held.timer);
      }
    }
  }

  async #runBatch(
    items: Entry[],
    recs: QueueRecord[],
    loaded: Loaded<S>,
    sentinels: Map<string, Entry>,
    qcons: Entry,
    leaseVs: string | null,
    attempt: AbortController,
    held: () => Holding | undefined,
  ): Promise<boolean | number> {
    const c = this.#c;
    let state = loaded.state;
    const done: Entry[] = [];
    const replies: { id: string; status: 1 | 3; value: unknown }[] = [];
    const actions: Action<S>[] = [];
    let lockRec: LockRecord | undefined;
    let stop: { reason: unknown } | undefined;
    let failure: { item: Entry; rec: QueueRecord; error: Error } | undefined;
    const callsMax = Math.max(1, c.db.limits.checksMax - 6);
    let calls = 0;
    for (const [i, item] of items.entries()) {
      const rec = recs[i]!;
      const [kind, msg, replyId] = rec;
      if (kind === 0 && ++calls > callsMax) break;
      let u: Unpacked<S, Reply>;
      try {
        const what = kind === 0 ? "handleCall" : "handleCast";
        const result = await c.invoke<CallResult<S, Reply> | NoReplyResult<S>>(
          what,
          () =>
            kind === 0
              ? c.b.handleCall(msg as Call, { id: replyId ?? randomId() }, state)
              : c.b.handleCast(msg as Cast, state),
          attempt.signal,
        );
        u = unpack(result, what);
        if (u.lock && c.b.handleLocked === undefined) {
          throw new TypeError("a callback returned { lock } but the behaviour has no handleLocked");
        }
      } catch (e) {
        if (c.stopped) throw e;
        if (attempt.signal.aborted) return true; // the lease went to another consumer
        failure = { item, rec, error: errorOf(e) };
        break;
      }
      state = u.state;
      done.push(item);
      actions.push(...u.actions);
      if (replyId !== null && kind === 0 && !u.lock) {
        if (u.reply !== undefined || u.stop === undefined) {
          replies.push({ id: replyId, status: 1, value: u.reply });
        } else replies.push({ id: replyId, status: 3, value: u.stop });
      }
      if (u.lock) {
        lockRec = [c.id, kind, msg, replyId, 0, 0];
        break;
      }
      if (u.stop !== undefined) {
        stop = { reason: u.stop };
        break;
      }
    }
    const leaseCheck = (): Check => ({ key: K_LEASE, versionstamp: held()?.vs ?? leaseVs });
    if (done.length === 0 && failure !== undefined) {
      return await this.#failed(
        failure.item,
        failure.rec,
        failure.error,
        sentinels,
        qcons,
        leaseCheck(),
      );
    }
    // One commit: dequeue, new state, replies, maybe the lock; the lease goes. A
    // conflict caused only by callers that gave up (their reply keys went) is
    // committed again without their replies: the callbacks never run twice for it.
    let local: { waiter: Waiter; status: 1 | 3; value: unknown }[] = [];
    let vs: string | undefined;
    for (let round = 0;; round++) {
      const checks: Check[] = [
        { key: K_STATE, versionstamp: loaded.versionstamp },
        { key: K_QCONS, versionstamp: qcons.versionstamp },
        leaseCheck(),
      ];
      const mutations: Mutation[] = [{ type: "sum", key: K_QCONS, value: 1n }];
      if (held() !== undefined || leaseVs !== null) {
        mutations.push({ type: "delete", key: K_LEASE });
      }
      local = [];
      try {
        for (const item of done) mutations.push({ type: "delete", key: item.key });
        mutations.push(qlenAdd(-done.length));
        for (const r of replies) {
          const waiter = c.reply(r.id, sentinels.get(r.id), r.status, r.value, checks, mutations);
          if (waiter !== undefined) local.push({ waiter, status: r.status, value: r.value });
        }
        if (lockRec !== undefined) {
          checks.push({ key: K_LOCK, versionstamp: null });
          mutations.push({ type: "set", key: K_LOCK, value: enc(lockRec, "msg") });
        }
        vs = await c.commitWithState(state, loaded, checks, mutations);
      } catch (e) {
        if (e instanceof DurableKilledError || c.stopped) throw e;
        if (!isResultError(e)) throw e; // storage trouble: the loop retries
        if (done.length > 1) {
          // Which message made it? One at a time until past it.
          this.#single = true;
          return true;
        }
        return await this.#failed(done[0]!, recs[0]!, errorOf(e), sentinels, qcons, leaseCheck());
      }
      if (vs !== undefined || replies.length === 0 || round >= c.o.conflictRetriesMax) break;
      if (!await this.#onlyRepliesMoved(checks, sentinels)) break;
    }
    if (vs === undefined) return true; // a conflict: try again
    if (done.length === items.length || lockRec !== undefined || stop !== undefined) {
      this.#single = false;
    }
    c.stats.commits++;
    c.stats.processed += done.length;
    for (const l of local) c.settle(l.waiter, l.status, l.value);
    await c.runActions(actions, state);
    if (lockRec !== undefined) {
      const lock = await c.db.get(K_LOCK);
      if (lock.versionstamp !== null) await this.#locks.run(lockRec, lock.versionstamp);
    }
    if (stop !== undefined) this.#halt(stop.reason);
    return true;
  }

  /**
   * After a conflict: true when everything the commit checked is as it was
   * but reply keys of callers that gave up meanwhile; `sentinels` is brought
   * up to date (a reply key that went gets no reply).
   */
  async #onlyRepliesMoved(checks: Check[], sentinels: Map<string, Entry>): Promise<boolean> {
    const now = await this.#c.db.getMany(checks.map((k) => k.key));
    let replyMoved = false;
    for (let i = 0; i < checks.length; i++) {
      const k = checks[i]!, e = now[i]!;
      if (e.versionstamp === k.versionstamp) continue;
      if (k.key[0] !== K_REPLY) return false; // the state, the queue, the lease or a lock moved
      replyMoved = true;
      const id = k.key[1] as string;
      if (e.value === null) sentinels.delete(id);
      else sentinels.set(id, e);
    }
    return replyMoved;
  }

  /** Takes the lease (checked against what was seen), and renews it while held. */
  async #takeLease(seenVs: string | null, qcons: Entry): Promise<Holding | undefined> {
    const c = this.#c;
    if (c.stopped) return undefined;
    const r = await c.db.commit(
      [
        { key: K_LEASE, versionstamp: seenVs },
        { key: K_QCONS, versionstamp: qcons.versionstamp },
        c.epochCheck(),
      ],
      [{ type: "set", key: K_LEASE, value: enc([c.id, 0] satisfies LeaseRecord) }],
    ).catch(() => ({ ok: false as const }));
    if (!r.ok) return undefined;
    const h = new Holding(r.versionstamp);
    renew(c, h, K_LEASE, (n) => enc([c.id, n] satisfies LeaseRecord), c.o.leaseTimeoutMs);
    return h;
  }

  /** A failed attempt of a queued message: count it; past maxAttempts, dead-letter it. */
  async #failed(
    item: Entry,
    rec: QueueRecord,
    error: Error,
    sentinels: Map<string, Entry>,
    qcons: Entry,
    leaseCheck: Check,
  ): Promise<boolean | number> {
    const c = this.#c;
    const attempts = rec[3] + 1;
    c.stats.failures++;
    c.log(
      "warn",
      `${rec[0] === 0 ? "call" : "cast"} failed (attempt ${attempts} of ${c.o.maxAttempts})`,
      error,
    );
    const checks: Check[] = [
      { key: K_QCONS, versionstamp: qcons.versionstamp },
      leaseCheck,
      c.epochCheck(),
    ];
    const base: Mutation[] = [{ type: "sum", key: K_QCONS, value: 1n }];
    if (leaseCheck.versionstamp !== null) base.push({ type: "delete", key: K_LEASE });
    if (attempts < c.o.maxAttempts) {
      const r = await c.db.commit(checks, [...base, {
        type: "set",
        key: item.key,
        value: enc([rec[0], rec[1], rec[2], attempts] satisfies QueueRecord),
      }]);
      if (!r.ok) await c.assertAlive();
      return r.ok ? Math.min(1000, 10 * 2 ** attempts) : true;
    }
    const errInfo = { name: error.name, message: error.message.slice(0, 4096) };
    const mutations: Mutation[] = [
      ...base,
      { type: "delete", key: item.key },
      qlenAdd(-1),
      {
        type: "appendOrdered",
        prefix: K_DLQ,
        value: enc([[rec[0], rec[1], null, attempts], errInfo, c.clock.wallNow()]),
      },
    ];
    const replyId = rec[2];
    const dead = [attempts, errInfo.name, errInfo.message];
    const waiter = replyId === null
      ? undefined
      : c.reply(replyId, sentinels.get(replyId), 2, dead, checks, mutations);
    const r = await c.db.commit(checks, mutations);
    if (r.ok) {
      c.stats.deadLettered++;
      if (waiter !== undefined) c.settle(waiter, 2, dead, error);
    } else await c.assertAlive();
    return true;
  }

  /** Runs `handleLocked` for a lock this handle just committed (see LockRunner.run). */
  runLocked(lockRec: LockRecord, lockVs: string): Promise<unknown> {
    return this.#locks.run(lockRec, lockVs);
  }
}
