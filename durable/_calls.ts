// The call path of a durable server: dgen's inline path for calls on an idle
// queue, waiting for replies written by other processes, timeouts, and
// encoding of queue records. Module-private.

import type { TimerId } from "../base/clock.ts";
import { encodeForWire } from "../base/codec.ts";
import type { Action } from "./behaviour.ts";
import type { Core, Waiter } from "./_core.ts";
import { DurableKilledError, DurableTimeoutError } from "./errors.ts";
import {
  dec,
  K_LOCK,
  K_QLEN,
  K_STATE,
  type QueueRecord,
  type ReplyRecord,
  unpack,
} from "./_records.ts";
import type { Loaded } from "./_state.ts";
import type { Check, Key } from "./storage.ts";

/** What the inline path did with a call: answered it, or left it for the queue. */
export type InlineResult<Reply> = { done: true; reply: Reply } | { done: false };

const NOT_DONE: { done: false } = { done: false };

interface InlineCall<Call, Reply> {
  msg: Call;
  id: string;
  resolve: (r: InlineResult<Reply>) => void;
  reject: (e: unknown) => void;
}

/**
 * The inline path of one handle, with what it last saw of an idle queue. Its
 * calls go one commit at a time; those that arrive while one is in flight wait
 * and go together in the next, up to `consumeBatch` per commit (a storage's
 * round trip then serves many calls, as a consumer's batch does).
 */
export class InlineCalls<S, Call, Cast, Info, Reply> {
  readonly #c: Core<S, Call, Cast, Info, Reply>;
  /** The queue length's versionstamp when this handle last saw the queue idle. */
  #idleQlen: string | null | undefined;
  /** Calls waiting for the commit in flight to end (at most the handle's callers). */
  #waiting: InlineCall<Call, Reply>[] = [];
  #draining = false;

  constructor(core: Core<S, Call, Cast, Info, Reply>) {
    this.#c = core;
  }

  /** This handle queued a message: the queue is not idle as last seen. */
  queued(): void {
    this.#idleQlen = undefined;
  }

  /**
   * The inline path (dgen's, batched): when the queue is empty and unlocked,
   * calls run in this handle's own commit, which checks that nothing was
   * enqueued meanwhile (the `qv` counter), so FIFO order holds. Anything
   * unusual (a lock, a stop, a throw, a conflict, a result that cannot be
   * committed) sends that call and those after it in its batch to the queue,
   * where failures are counted.
   */
  run(msg: Call, id: string): Promise<InlineResult<Reply>> {
    const p = Promise.withResolvers<InlineResult<Reply>>();
    this.#waiting.push({ msg, id, resolve: p.resolve, reject: p.reject });
    if (!this.#draining) void this.#drain();
    return p.promise;
  }

  async #drain(): Promise<void> {
    this.#draining = true;
    try {
      while (this.#waiting.length > 0) {
        const batch = this.#waiting.splice(0, Math.max(1, this.#c.o.batch));
        try {
          const results = await this.#runBatch(batch);
          for (let i = 0; i < batch.length; i++) batch[i]!.resolve(results[i] ?? NOT_DONE);
          if (results.length < batch.length) {
            // Cut short: the calls waiting behind it go to the queue too, after it, in order.
            for (const call of this.#waiting.splice(0)) call.resolve(NOT_DONE);
          }
        } catch (e) {
          for (const call of batch) call.reject(e);
        }
      }
    } finally {
      this.#draining = false;
    }
  }

  async #runBatch(batch: InlineCall<Call, Reply>[]): Promise<InlineResult<Reply>[]> {
    const c = this.#c;
    // First optimistically, with no reads: the cached state and the queue-length
    // versionstamp seen idle last time. The commit's checks make it safe.
    const idle = this.#idleQlen;
    const cached = c.state.cached;
    if (idle !== undefined && cached !== undefined) {
      const r = await this.#attempt(batch, cached, idle);
      if (r !== "conflict") return r;
    }
    this.#idleQlen = undefined;
    const [qlen, lock, header] = await c.db.getMany([K_QLEN, K_LOCK, K_STATE]);
    if (lock!.value !== null || (qlen!.value !== null && qlen!.value !== 0n)) return [];
    this.#idleQlen = qlen!.versionstamp;
    const r = await this.#attempt(batch, await c.state.load(header), qlen!.versionstamp);
    return r === "conflict" ? [] : r;
  }

  /** Runs the batch's callbacks in order on `loaded` and commits the result once. */
  async #attempt(
    batch: InlineCall<Call, Reply>[],
    loaded: Loaded<S>,
    qlenVersionstamp: string | null,
  ): Promise<InlineResult<Reply>[] | "conflict"> {
    const c = this.#c;
    const ran: { reply: unknown; actions: Action<S>[]; state: S }[] = [];
    let state = loaded.state;
    try {
      for (const call of batch) {
        let u;
        try {
          u = unpack<S, Reply>(
            await c.invoke("handleCall", () => c.b.handleCall(call.msg, { id: call.id }, state)),
            "handleCall",
          );
          if (u.lock || u.stop !== undefined) break;
          encodeForWire(u.reply, "reply");
        } catch (e) {
          if (e instanceof DurableKilledError || c.stopped) throw e;
          break; // this call and those after it: retried, counted and maybe dead-lettered in the queue
        }
        ran.push({ reply: u.reply, actions: u.actions, state: u.state });
        state = u.state;
      }
      if (ran.length === 0) return [];
      // The callbacks ran once: their result is committed, or the calls go to the queue
      // (where they run again) only when the state they saw changed or the queue is busy.
      let qlenVs = qlenVersionstamp;
      for (let round = 0;; round++) {
        const checks: Check[] = [
          { key: K_QLEN, versionstamp: qlenVs },
          { key: K_LOCK, versionstamp: null },
          { key: K_STATE, versionstamp: loaded.versionstamp },
        ];
        if (await c.commitWithState(state, loaded, checks, []) !== undefined) break;
        this.#idleQlen = undefined;
        if (round >= c.o.conflictRetriesMax) return "conflict";
        // Why? A queue that was busy and is idle again, with the state as the callbacks
        // saw it, keeps the result: only the queue length's versionstamp moved.
        const [qlen, lock, header] = await c.db.getMany([K_QLEN, K_LOCK, K_STATE]);
        const idle = lock!.value === null && (qlen!.value === null || qlen!.value === 0n);
        if (!idle || header!.versionstamp !== loaded.versionstamp) return "conflict";
        qlenVs = qlen!.versionstamp;
      }
      this.#idleQlen = qlenVs;
    } catch (e) {
      if (e instanceof DurableKilledError || c.stopped) throw e;
      return []; // retried, counted and maybe dead-lettered through the queue
    }
    c.stats.processed += ran.length;
    c.stats.commits++;
    for (const r of ran) await c.runActions(r.actions, r.state);
    return ran.map((r) => ({ done: true, reply: r.reply as Reply }));
  }
}

/**
 * Waits for the reply key of a call answered by another process's consumer and
 * settles `waiter` with it (then removes the key).
 */
export async function watchReply<S, Call, Cast, Info, Reply>(
  c: Core<S, Call, Cast, Info, Reply>,
  key: Key,
  signal: AbortSignal,
  waiter: Waiter,
): Promise<void> {
  try {
    let seen = false;
    for await (const [e] of c.db.watch([key], signal)) {
      if (e === undefined) continue;
      if (e.value === null) {
        // Deleted: by a local consumer that answers through the waiter (its settle may
        // come after the watch sees the deletion), or by kill(), which removes the epoch.
        if (!seen) continue;
        try {
          await c.assertAlive();
        } catch (err) {
          waiter.reject(err);
        }
        return;
      }
      seen = true;
      const [status, value] = dec<ReplyRecord>(e);
      if (status === 0) continue;
      await c.db.commit([], [{ type: "delete", key }]).catch(() => {});
      c.settle(waiter, status, value);
      return;
    }
  } catch (e) {
    if (!signal.aborted) waiter.reject(e);
  }
}

/** Encodes a queue record; a message that cannot cross the wire is named by its path. */
export function encRecord(record: QueueRecord, msg: unknown): Uint8Array {
  try {
    return encodeForWire(record, "record");
  } catch (e) {
    encodeForWire(msg, "msg", "cannot queue the message");
    throw e;
  }
}

/** Awaits `p` for at most `ms` (`Infinity`: forever); rejects with DurableTimeoutError. */
export async function withTimeout<T>(
  p: Promise<T>,
  c: {
    clock: { setTimeout(fn: () => void, ms: number): TimerId; clearTimeout(id: TimerId): void };
  },
  ms: number,
  reportMs = ms,
): Promise<T> {
  if (ms === Infinity) return await p;
  let timer: TimerId | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) => {
        timer = c.clock.setTimeout(() => reject(new DurableTimeoutError(reportMs)), ms);
      }),
    ]);
  } finally {
    if (timer !== undefined) c.clock.clearTimeout(timer);
  }
}
