// The call path of a durable server: dgen's inline path for calls on an idle
// queue, waiting for replies written by other processes, timeouts, and
// encoding of queue records. Module-private.

import type { TimerId } from "../base/clock.ts";
import { encodeForWire } from "../base/codec.ts";
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

/** The inline path of one handle, with what it last saw of an idle queue. */
export class InlineCalls<S, Call, Cast, Info, Reply> {
  readonly #c: Core<S, Call, Cast, Info, Reply>;
  /** The queue length's versionstamp when this handle last saw the queue idle. */
  #idleQlen: string | null | undefined;

  constructor(core: Core<S, Call, Cast, Info, Reply>) {
    this.#c = core;
  }

  /** This handle queued a message: the queue is not idle as last seen. */
  queued(): void {
    this.#idleQlen = undefined;
  }

  /**
   * The inline path (as in dgen, only with `consumeBatch` 1): when the queue is
   * empty and unlocked, the call runs in the caller's own commit, which checks
   * that nothing was enqueued meanwhile (the `qv` counter), so FIFO order holds.
   * Anything unusual (a lock, a stop, a throw, a conflict, a result that cannot
   * be committed) falls back to the queue, where failures are counted.
   */
  async run(msg: Call, id: string): Promise<{ done: true; reply: Reply } | { done: false }> {
    const c = this.#c;
    // First optimistically, with no reads: the cached state and the queue-length
    // versionstamp seen idle last time. The commit's checks make it safe.
    const idle = this.#idleQlen;
    const cached = c.state.cached;
    if (idle !== undefined && cached !== undefined) {
      const r = await this.#attempt(msg, id, cached, idle);
      if (r !== "conflict") return r;
    }
    this.#idleQlen = undefined;
    const [qlen, lock, header] = await c.db.getMany([K_QLEN, K_LOCK, K_STATE]);
    if (lock!.value !== null || (qlen!.value !== null && qlen!.value !== 0n)) {
      return { done: false };
    }
    this.#idleQlen = qlen!.versionstamp;
    const r = await this.#attempt(msg, id, await c.state.load(header), qlen!.versionstamp);
    return r === "conflict" ? { done: false } : r;
  }

  async #attempt(
    msg: Call,
    id: string,
    loaded: Loaded<S>,
    qlenVersionstamp: string | null,
  ): Promise<{ done: true; reply: Reply } | { done: false } | "conflict"> {
    const c = this.#c;
    let u;
    try {
      u = unpack<S, Reply>(
        await c.invoke("handleCall", () => c.b.handleCall(msg, { id }, loaded.state)),
        "handleCall",
      );
      if (u.lock || u.stop !== undefined) return { done: false };
      encodeForWire(u.reply, "reply");
      // The callback ran once: its result is committed, or the call goes to the queue
      // (where it runs again) only when the state it saw changed or the queue is busy.
      let qlenVs = qlenVersionstamp;
      for (let round = 0;; round++) {
        const checks: Check[] = [
          { key: K_QLEN, versionstamp: qlenVs },
          { key: K_LOCK, versionstamp: null },
          { key: K_STATE, versionstamp: loaded.versionstamp },
        ];
        if (await c.commitWithState(u.state, loaded, checks, []) !== undefined) break;
        this.#idleQlen = undefined;
        if (round >= c.o.conflictRetriesMax) return "conflict";
        // Why? A queue that was busy and is idle again, with the state as the callback
        // saw it, keeps the result: only the queue length's versionstamp moved.
        const [qlen, lock, header] = await c.db.getMany([K_QLEN, K_LOCK, K_STATE]);
        const idle = lock!.value === null && (qlen!.value === null || qlen!.value === 0n);
        if (!idle || header!.versionstamp !== loaded.versionstamp) return "conflict";
        qlenVs = qlen!.versionstamp;
      }
      this.#idleQlen = qlenVs;
    } catch (e) {
      if (e instanceof DurableKilledError || c.stopped) throw e;
      return { done: false }; // retried, counted and maybe dead-lettered through the queue
    }
    c.stats.processed++;
    c.stats.commits++;
    await c.runActions(u.actions, u.state);
    return { done: true, reply: u.reply as Reply };
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
