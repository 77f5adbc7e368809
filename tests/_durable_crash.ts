// The durable crash test, shared by the Deno KV and etcd suites: a producer
// process casts increments while consumer processes are SIGKILLed again and
// again (and, for etcd, while cluster members die); the count must come out
// exact, in FIFO order, with an empty queue, and every call made meanwhile must
// end with a reply or a named error.

import assert from "node:assert/strict";
import { type DurableBehaviour, DurableServer, type Storage } from "../mod.ts";
import { durableKeyPrefix } from "../durable/mod.ts";
import type { CounterCast, CounterState } from "./durable_worker.ts";
import { JsonProcess } from "./_helpers.ts";

/** A durable-server process (tests/durable_worker.ts). */
export class DurableWorker extends JsonProcess {
  constructor(args: string[]) {
    super(
      new URL("./durable_worker.ts", import.meta.url),
      ["--unstable-kv", "--allow-read", "--allow-write", "--allow-env", "--allow-net=127.0.0.1"],
      args,
    );
  }
}

/** Reads the counter without consuming. */
export const Reader: DurableBehaviour<CounterState, "get", CounterCast> = {
  init: () => ({ state: { n: 0, seen: {}, order: [] } }),
  handleCall: (_m, _f, s) => ({ reply: s, state: s }),
  handleCast: (_m, s) => ({ state: s }),
};

/** The keys of the worker's queue in `storage`. */
export function queueOf(storage: Storage, tenant = ["counter"]): Promise<unknown[]> {
  return storage.list({ prefix: [...durableKeyPrefix(tenant), "queue"] });
}

export interface CrashOptions {
  /** Storage arguments of the worker (`--path F` or `--etcd URLS --prefix P`). */
  storageArgs: string[];
  /** Opens the same storage in this process (with the worker's tenant under any prefix). */
  open: () => Promise<Storage>;
  /** Increments to cast (default 1000). */
  count?: number;
  /** Consumer SIGKILLs at least (default 8). */
  killsMin?: number;
  /** Consumer SIGKILLs at most (default none: until the producer is done). */
  killsMax?: number;
  /** Pause of the producer between casts (default 0 ms). */
  paceMs?: number;
  seed: number;
  /** Runs while the producer produces; resolves with what it did. */
  chaos?: (signal: AbortSignal) => Promise<string[]>;
  /** Calls made meanwhile, one every this many ms (default none). */
  callEveryMs?: number;
}

export interface CrashReport {
  kills: number;
  state: CounterState | undefined;
  /** `longestMs`: the longest call less its timer's lateness (`timersLateMs`, the most seen). */
  calls: {
    answered: number;
    failed: Record<string, number>;
    longestMs: number;
    timersLateMs: number;
  };
  chaos: string[];
}

/** Runs the crash test and asserts its outcome. */
export async function crashRun(o: CrashOptions): Promise<CrashReport> {
  const count = o.count ?? 1000;
  let rnd = o.seed;
  const next = () => ((rnd = (rnd * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  const workers: DurableWorker[] = [];
  const spawn = (args: string[]) => {
    const w = new DurableWorker([...o.storageArgs, ...args]);
    workers.push(w);
    return w;
  };
  const storage = await o.open();
  const chaosCtl = new AbortController();
  const calls = {
    answered: 0,
    failed: {} as Record<string, number>,
    longestMs: 0,
    timersLateMs: 0,
  };
  let callsDone: Promise<void> = Promise.resolve();
  let chaos: Promise<string[]> = Promise.resolve([]);
  try {
    const producer = spawn([
      "--mode",
      "produce",
      "--count",
      String(count),
      "--producer",
      "p1",
      "--pace-ms",
      String(o.paceMs ?? 0),
    ]);
    await producer.waitEvent("ready", 20_000);
    if (o.chaos) chaos = o.chaos(chaosCtl.signal);
    const reader = await DurableServer.start(Reader, null, {
      storage,
      tenant: ["counter"],
      consume: false,
      logger: () => {},
    });
    if (o.callEveryMs !== undefined) {
      const every = o.callEveryMs;
      callsDone = (async () => {
        for (let i = 0; i < 10_000 && !chaosCtl.signal.aborted; i++) {
          const t0 = Date.now();
          // A timer armed with the call's timeout measures this process's own
          // lateness (a loaded machine runs timers late): a call ends by its
          // timeout when it ends by its timeout plus that lateness.
          let late = 0;
          const timer = setTimeout(() => late = Date.now() - t0 - 3000, 3000);
          try {
            await reader.call("get", { timeoutMs: 3000 });
            calls.answered++;
          } catch (e) {
            const name = (e as Error).name;
            calls.failed[name] = (calls.failed[name] ?? 0) + 1;
          } finally {
            clearTimeout(timer);
          }
          calls.longestMs = Math.max(calls.longestMs, Date.now() - t0 - Math.max(0, late));
          calls.timersLateMs = Math.max(calls.timersLateMs, late);
          await new Promise((r) => setTimeout(r, every));
        }
      })();
    }
    let kills = 0;
    for (let round = 0; round < 200; round++) {
      const consumer = spawn(["--mode", "consume"]);
      await consumer.waitEvent("ready", 30_000);
      await new Promise((r) => setTimeout(r, 50 + next() * 200));
      await consumer.kill("SIGKILL");
      kills++;
      if (producer.events.some((l) => l.event === "produced") && kills >= (o.killsMin ?? 8)) break;
      if (kills >= (o.killsMax ?? Infinity)) break;
    }
    await producer.waitEvent("produced", 120_000);
    chaosCtl.abort();
    const chaosLog = await chaos;
    // Recovery: one last consumer drains the queue.
    const last = spawn(["--mode", "consume"]);
    await last.waitEvent("ready", 30_000);
    let state: CounterState | undefined;
    for (let i = 0; i < 600; i++) {
      state = await reader.priorityCall("get", { timeoutMs: 10_000 }) as CounterState;
      if (state.n === count && (await queueOf(storage)).length === 0) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    await callsDone;
    await reader.stop();
    assert.ok(kills >= (o.killsMin ?? 8), `killed ${kills} times`);
    assert.equal(state?.n, count, `exactly ${count}: no increment lost, none applied twice`);
    assert.equal((await queueOf(storage)).length, 0, "the queue is empty");
    assert.equal(state?.seen.p1, count - 1, "in FIFO order");
    assert.ok(
      calls.longestMs < 3000 + 1000,
      `every call ended by its timeout (${calls.longestMs} ms)`,
    );
    for (const name of Object.keys(calls.failed)) {
      assert.ok(
        ["DurableTimeoutError", "StorageError", "DeadLetterError"].includes(name),
        `a call failed with ${name}`,
      );
    }
    return { kills, state, calls, chaos: chaosLog };
  } finally {
    chaosCtl.abort();
    await callsDone.catch(() => {});
    await chaos.catch(() => {});
    for (const w of workers) await w.kill("SIGTERM");
    await storage.close();
  }
}
