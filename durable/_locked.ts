// Locks of a durable server: a callback's `{ lock }` is committed, then
// `handleLocked` runs outside any transaction, once per lock, while the lock
// record is renewed; a lock whose record has not changed for lockTimeoutMs
// (on this process's monotonic clock) is taken over. Module-private.

import type { LockedEvent } from "./behaviour.ts";
import type { Core, Waiter } from "./_core.ts";
import { errorOf, Holding, isResultError, renew } from "./_holding.ts";
import type { Loaded } from "./_state.ts";
import { DurableKilledError, DurableStoppedError } from "./errors.ts";
import {
  dec,
  enc,
  K_DLQ,
  K_LOCK,
  K_STATE,
  type LockRecord,
  randomId,
  type Staleness,
  unpack,
  type Unpacked,
} from "./_records.ts";
import type { Check, Entry, Mutation } from "./storage.ts";

export class LockRunner<S, Call, Cast, Info, Reply> {
  readonly #c: Core<S, Call, Cast, Info, Reply>;
  readonly #seen: Staleness;
  readonly #halt: (reason: unknown) => void;
  #running = false;

  constructor(
    core: Core<S, Call, Cast, Info, Reply>,
    seen: Staleness,
    halt: (reason: unknown) => void,
  ) {
    this.#c = core;
    this.#seen = seen;
    this.#halt = halt;
  }

  /** Whether `handleLocked` is running here now. */
  get running(): boolean {
    return this.#running;
  }

  /**
   * A lock is in storage: resume it if it is ours, take it over if it has not
   * been renewed for lockTimeoutMs; otherwise how long to wait.
   */
  async onLock(lock: Entry, now: number): Promise<boolean | number> {
    const c = this.#c;
    const rec = dec<LockRecord>(lock);
    if (rec[0] === c.id) {
      // Ours, with nobody running it (a failed handleLocked backed off): resume.
      await this.run(rec, lock.versionstamp!);
      return true;
    }
    if (!Number.isFinite(c.o.lockTimeoutMs)) return false;
    if (!this.#seen.stale("lock", lock.versionstamp!, now, c.o.lockTimeoutMs)) {
      return this.#seen.remaining("lock", now, c.o.lockTimeoutMs) + 1;
    }
    // Not renewed for lockTimeoutMs: the holder is gone. Take it over and finish its work.
    const mine: LockRecord = [c.id, rec[1], rec[2], rec[3], rec[4], 0];
    const r = await c.db.commit(
      [{ key: K_LOCK, versionstamp: lock.versionstamp }, c.epochCheck()],
      [{ type: "set", key: K_LOCK, value: enc(mine) }],
    );
    if (!r.ok) {
      await c.assertAlive();
      return true;
    }
    this.#seen.forget("lock");
    c.stats.takeovers++;
    c.log("warn", `took over a lock not renewed for ${c.o.lockTimeoutMs} ms`);
    await this.run(mine, r.versionstamp);
    return true;
  }

  /**
   * Runs `handleLocked` outside any transaction, once per lock: its result
   * commits on the lock alone (it replaces the state, as in dgen), and the lock
   * is renewed while it runs. A throw or a timeout is a failed attempt of the
   * locked message; past maxAttempts it is dead-lettered and the lock released.
   */
  async run(lockRec: LockRecord, lockVs: string): Promise<unknown> {
    const c = this.#c;
    this.#running = true;
    try {
      let rec = lockRec;
      let vs = lockVs;
      for (let round = 0; round < 10_000 && !c.stopped; round++) {
        const [, kind, msg, replyId, attempts] = rec;
        const loaded = await c.state.load();
        const event: LockedEvent = kind === 0
          ? { type: "call", from: { id: replyId ?? randomId() } }
          : kind === 1
          ? { type: "cast" }
          : { type: "info" };
        const h = new Holding(vs);
        renew(
          c,
          h,
          K_LOCK,
          (n) => enc([rec[0], rec[1], rec[2], rec[3], rec[4], n] satisfies LockRecord),
          c.o.lockTimeoutMs,
        );
        let u: Unpacked<S, Reply> | undefined;
        let error: Error | undefined;
        try {
          u = unpack(
            await c.invoke(
              "handleLocked",
              () => c.b.handleLocked!(event, msg, loaded.state),
              h.ctl.signal,
            ),
            "handleLocked",
          );
        } catch (e) {
          if (c.stopped) return undefined;
          error = errorOf(e);
        } finally {
          h.ctl.abort(new Error("done"));
          if (h.timer !== undefined) c.clock.clearTimeout(h.timer);
        }
        if (h.lost) {
          c.log("warn", "lost the lock (not renewed in time); handleLocked's result dropped");
          return undefined;
        }
        vs = h.vs;
        if (u !== undefined) {
          const result = await this.#commitLocked(rec, vs, loaded, u);
          if (result === "lost") return undefined;
          if (result instanceof Error) error = result;
          else {
            if (!u.lock) return u.reply;
            rec = result.rec;
            vs = result.vs;
            continue; // a new lock: handleLocked again, for it
          }
        }
        // A failed attempt of the locked message.
        const n = attempts + 1;
        c.stats.failures++;
        c.log("warn", `handleLocked failed (attempt ${n} of ${c.o.maxAttempts})`, error);
        const next: LockRecord = [rec[0], rec[1], rec[2], rec[3], n, 0];
        if (n < c.o.maxAttempts) {
          const r = await c.db.commit([{ key: K_LOCK, versionstamp: vs }, c.epochCheck()], [
            { type: "set", key: K_LOCK, value: enc(next) },
          ]);
          if (!r.ok) {
            await c.assertAlive();
            return undefined; // taken over
          }
          rec = next;
          vs = r.versionstamp;
          await new Promise<void>((r) => c.clock.setTimeout(r, Math.min(1000, 10 * 2 ** n)));
          continue;
        }
        await this.#deadLetterLocked(rec, vs, n, error!);
        return undefined;
      }
      return undefined;
    } finally {
      this.#running = false;
    }
  }

  /**
   * Commits handleLocked's result on the lock alone. A conflict while the lock
   * is still this handle's (a priority request changed the state, a caller gave
   * up) commits the same result again: handleLocked runs once per lock, and its
   * result replaces the state, as in dgen.
   */
  async #commitLocked(
    rec: LockRecord,
    lockVs: string,
    loaded: Loaded<S>,
    u: Unpacked<S, Reply>,
  ): Promise<"lost" | Error | { rec: LockRecord; vs: string }> {
    const c = this.#c;
    const [, kind, msg, replyId] = rec;
    try {
      for (let round = 0; round <= c.o.conflictRetriesMax; round++) {
        const header = await c.db.get(K_STATE);
        const checks: Check[] = [
          { key: K_LOCK, versionstamp: lockVs },
          { key: K_STATE, versionstamp: header.versionstamp },
        ];
        const mutations: Mutation[] = [];
        let local: { waiter: Waiter; status: 1 | 3; value: unknown } | undefined;
        let next: LockRecord | undefined;
        if (u.lock) {
          next = [c.id, kind, msg, replyId, 0, 0];
          mutations.push({ type: "set", key: K_LOCK, value: enc(next) });
        } else {
          mutations.push({ type: "delete", key: K_LOCK });
          if (replyId !== null && kind === 0) {
            const status = u.reply !== undefined || u.stop === undefined ? 1 : 3;
            const value = status === 1 ? u.reply : u.stop;
            const sentinel = await c.db.get(["reply", replyId]);
            const waiter = c.reply(replyId, sentinel, status, value, checks, mutations);
            if (waiter !== undefined) local = { waiter, status, value };
          }
        }
        const vs = await c.commitWithState(u.state, loaded, checks, mutations, {
          force: true,
          header,
        });
        if (vs === undefined) {
          const lock = await c.db.get(K_LOCK);
          if (lock.versionstamp !== lockVs) return "lost";
          continue; // the state or a reply key moved under the lock: commit the result again
        }
        if (local !== undefined) c.settle(local.waiter, local.status, local.value);
        await c.runActions(u.actions, u.state);
        if (u.stop !== undefined) this.#halt(u.stop);
        return next === undefined ? { rec, vs } : { rec: next, vs };
      }
      return new Error(
        `handleLocked's result kept conflicting (${c.o.conflictRetriesMax} retries)`,
      );
    } catch (e) {
      if (e instanceof DurableKilledError || e instanceof DurableStoppedError) throw e;
      if (!isResultError(e)) throw e;
      return errorOf(e);
    }
  }

  async #deadLetterLocked(
    rec: LockRecord,
    lockVs: string,
    attempts: number,
    error: Error,
  ): Promise<void> {
    const c = this.#c;
    const [, kind, msg, replyId] = rec;
    const errInfo = { name: error.name, message: error.message.slice(0, 4096) };
    const checks: Check[] = [{ key: K_LOCK, versionstamp: lockVs }, c.epochCheck()];
    const mutations: Mutation[] = [
      { type: "delete", key: K_LOCK },
      {
        type: "appendOrdered",
        prefix: K_DLQ,
        value: enc([[kind === 0 ? 0 : 1, msg, null, attempts], errInfo, c.clock.wallNow()]),
      },
    ];
    const dead = [attempts, errInfo.name, errInfo.message];
    const waiter = replyId === null
      ? undefined
      : c.reply(replyId, await c.db.get(["reply", replyId]), 2, dead, checks, mutations);
    const r = await c.db.commit(checks, mutations);
    if (r.ok) {
      c.stats.deadLettered++;
      if (waiter !== undefined) c.settle(waiter, 2, dead, error);
    } else await c.assertAlive();
  }
}
