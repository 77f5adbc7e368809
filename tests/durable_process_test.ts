// Durable servers across real processes on one file-backed Deno KV.

import assert from "node:assert/strict";
import { DenoKvStorage, type DurableBehaviour, DurableServer } from "../mod.ts";
import { durableKeyPrefix } from "../durable/mod.ts";
import type { CounterCast, CounterState } from "./durable_worker.ts";
import { crashRun, DurableWorker, Reader } from "./_durable_crash.ts";

const SEED = Number(Deno.env.get("CRASH_SEED") ?? Date.now() % 2 ** 31);

async function tempKv(): Promise<string> {
  return await Deno.makeTempFile({ prefix: "murmur-durable-", suffix: ".sqlite" });
}
async function removeKv(path: string): Promise<void> {
  for (const s of ["", "-wal", "-shm"]) await Deno.remove(path + s).catch(() => {});
}

Deno.test(`crash safety: a consumer SIGKILLed again and again loses nothing, applies nothing twice (CRASH_SEED=${SEED})`, async () => {
  console.log(`CRASH_SEED=${SEED}`);
  const path = await tempKv();
  try {
    const r = await crashRun({
      storageArgs: ["--path", path],
      open: () => DenoKvStorage.open(path, { pollIntervalMs: 20 }),
      seed: SEED,
    });
    console.log(`${r.kills} SIGKILLs; counter = ${r.state?.n}`);
  } finally {
    await removeKv(path);
  }
});

Deno.test("two consumers in two processes and two in this one: each message once, FIFO per producer", async () => {
  const path = await tempKv();
  const workers: DurableWorker[] = [];
  try {
    await using storage = await DenoKvStorage.open(path, { pollIntervalMs: 20 });
    const local = await Promise.all([0, 1].map(() =>
      DurableServer.start(
        {
          ...Reader,
          handleCast: (m: CounterCast, s: CounterState) => {
            if (m === "long") return { state: s };
            const last = s.seen[m.by] ?? -1;
            if (m.i !== last + 1) {
              throw new Error(`out of order from ${m.by}: ${m.i} after ${last}`);
            }
            return { state: { ...s, n: s.n + 1, seen: { ...s.seen, [m.by]: m.i } } };
          },
        } as DurableBehaviour<CounterState, "get", CounterCast>,
        null,
        { storage, tenant: ["counter"], consumeBatch: 4, logger: () => {} },
      )
    ));
    for (let i = 0; i < 2; i++) {
      workers.push(new DurableWorker(["--path", path, "--mode", "consume"]));
    }
    for (const w of workers) await w.waitEvent("ready", 20_000);
    const producers = ["p1", "p2", "p3"].map((p) =>
      new DurableWorker(["--path", path, "--mode", "produce", "--count", "150", "--producer", p])
    );
    workers.push(...producers);
    for (const p of producers) await p.waitEvent("produced", 60_000);
    let state: CounterState | undefined;
    for (let i = 0; i < 600; i++) {
      state = await local[0]!.priorityCall("get") as CounterState;
      if (state.n === 450) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.equal(state?.n, 450, "every message processed exactly once");
    assert.deepEqual(state?.seen, { p1: 149, p2: 149, p3: 149 });
    assert.equal(
      local.reduce((n, s) => n + s.stats().deadLettered, 0),
      0,
      "no message arrived out of order",
    );
    await Promise.all(local.map((s) => s.stop()));
  } finally {
    for (const w of workers) await w.kill("SIGTERM");
    await removeKv(path);
  }
});

Deno.test("a lock held by a killed process is taken over after lockTimeoutMs", async () => {
  const path = await tempKv();
  let holder: DurableWorker | undefined;
  try {
    await using storage = await DenoKvStorage.open(path, { pollIntervalMs: 20 });
    holder = new DurableWorker(["--path", path, "--mode", "lock", "--lock-timeout-ms", "600"]);
    await holder.waitEvent("ready", 20_000);
    const producer = await DurableServer.start(Reader, null, {
      storage,
      tenant: ["counter"],
      consume: false,
    });
    await producer.cast("long");
    await producer.cast({ by: "after", i: 0 });
    await holder.waitEvent("locked", 20_000);
    await holder.kill("SIGKILL");
    const killedAt = Date.now();
    // A fresh consumer (another process) finds the stale lock and finishes the locked work.
    const taker = new DurableWorker([
      "--path",
      path,
      "--mode",
      "consume",
      "--lock-timeout-ms",
      "600",
    ]);
    try {
      let state: CounterState | undefined;
      for (let i = 0; i < 300; i++) {
        state = await producer.priorityCall("get") as CounterState;
        if (state.n === 1) break;
        await new Promise((r) => setTimeout(r, 50));
      }
      const tookMs = Date.now() - killedAt;
      assert.equal(state?.order.length, 1, "handleLocked ran again, in the process that took over");
      assert.notEqual(state?.order[0], `unlocked-by-${holder.child.pid}`);
      assert.equal(state?.n, 1, "the queue moved on after the lock was released");
      // The lock was set just before the kill: nobody may take it before lockTimeoutMs (600 ms).
      assert.ok(tookMs >= 500, `taken over only after the timeout (${tookMs} ms after the kill)`);
      assert.equal((await storage.get([...durableKeyPrefix(["counter"]), "lock"])).value, null);
    } finally {
      await taker.kill("SIGTERM");
    }
    await producer.stop();
  } finally {
    await holder?.kill();
    await removeKv(path);
  }
});

Deno.test("locks are decided from storage, not clocks: 10 s and 60 s of skew between processes", async () => {
  const path = await tempKv();
  const workers: DurableWorker[] = [];
  const worker = (args: string[]) => {
    const w = new DurableWorker(["--path", path, "--lock-timeout-ms", "800", ...args]);
    workers.push(w);
    return w;
  };
  try {
    await using storage = await DenoKvStorage.open(path, { pollIntervalMs: 20 });
    const producer = await DurableServer.start(Reader, null, {
      storage,
      tenant: ["counter"],
      consume: false,
      logger: () => {},
    });
    // A live holder 10 s behind a consumer: its lock is never taken over.
    const holder = worker([
      "--mode",
      "slowlock",
      "--locked-ms",
      "2500",
      "--clock-offset-ms=-10000",
    ]);
    await holder.waitEvent("ready", 20_000);
    await producer.cast("long");
    const locked = await holder.waitEvent("locked", 20_000);
    const taker = worker(["--mode", "slowlock", "--locked-ms", "100"]);
    await taker.waitEvent("ready", 20_000);
    const unlocked = await holder.waitEvent("unlocked", 20_000);
    await new Promise((r) => setTimeout(r, 300));
    const overlap = taker.events.filter((e) =>
      e.event === "locked" && (e.t as number) < (unlocked.t as number)
    );
    assert.deepEqual(overlap, [], "handleLocked never ran in two processes at once");
    assert.equal(holder.events.filter((e) => e.event === "locked").length, 1);
    assert.ok((unlocked.t as number) - (locked.t as number) >= 2400, "the holder kept its lock");
    await holder.kill();
    await taker.kill();

    // A dead holder is still taken over after lockTimeoutMs, by a consumer 60 s behind.
    const doomed = worker(["--mode", "lock"]);
    await doomed.waitEvent("ready", 20_000);
    await producer.cast("long");
    await doomed.waitEvent("locked", 20_000);
    await doomed.kill("SIGKILL");
    const killedAt = Date.now();
    const late = worker(["--mode", "slowlock", "--clock-offset-ms=-60000"]);
    const took = await late.waitEvent("locked", 20_000);
    const ms = (took.t as number) - killedAt;
    console.log(
      `a dead holder's lock taken over ${ms} ms after the kill (lockTimeoutMs 800, taker 60 s behind)`,
    );
    assert.ok(ms >= 700, `not before lockTimeoutMs (${ms} ms)`);
    await late.waitEvent("unlocked", 20_000);
    await producer.stop();
  } finally {
    for (const w of workers) await w.kill();
    await removeKv(path);
  }
});
