import assert from "node:assert/strict";
import {
  DeadLetterError,
  DenoKvStorage,
  type DurableBehaviour,
  DurableServer,
  DurableStoppedError,
  DurableTimeoutError,
  MemoryStorage,
  type Storage,
  StorageLimitError,
} from "./mod.ts";

type CounterCall = "get" | { slow: number };
const Counter: DurableBehaviour<number, CounterCall, { add: number } | "boom", never, number> = {
  init: (arg) => ({ state: typeof arg === "number" ? arg : 0 }),
  handleCall: async (msg, _from, n) => {
    if (typeof msg === "object") await new Promise((r) => setTimeout(r, msg.slow));
    return { reply: n, state: n };
  },
  handleCast: (msg, n) => {
    if (msg === "boom") throw new RangeError("boom");
    return { state: n + msg.add };
  },
};

for (
  const [name, open] of [
    ["memory", () => Promise.resolve(new MemoryStorage())],
    ["deno kv", () => DenoKvStorage.open(":memory:")],
  ] as [string, () => Promise<Storage>][]
) {
  Deno.test(`${name}: call, cast, castBatch keep FIFO and state survives a new handle`, async () => {
    await using storage = await open();
    const s1 = await DurableServer.start(Counter, 10, { storage, tenant: ["c", 1] });
    await s1.cast({ add: 1 });
    await s1.castBatch([{ add: 2 }, { add: 3 }]);
    assert.equal(await s1.call("get"), 16);
    await s1.stop();
    // A new handle (a restart) sees the durable state; init does not run again.
    await using s2 = await DurableServer.start(Counter, 999, { storage, tenant: ["c", 1] });
    assert.equal(await s2.call("get"), 16);
    // reset re-initialises.
    await using s3 = await DurableServer.start(Counter, 5, {
      storage,
      tenant: ["c", 2],
      reset: true,
    });
    assert.equal(await s3.call("get"), 5);
    assert.equal(await s2.call("get"), 16, "tenants are separate");
  });

  Deno.test(`${name}: a throwing callback is retried, then dead-lettered, and can be replayed`, async () => {
    await using storage = await open();
    await using s = await DurableServer.start(Counter, 0, {
      storage,
      tenant: ["d"],
      maxAttempts: 3,
    });
    await s.cast("boom");
    await s.cast({ add: 1 });
    assert.equal(await s.call("get"), 1, "the queue moved on past the dead letter");
    const dl = await s.deadLetters();
    assert.equal(dl.length, 1);
    assert.equal(dl[0]!.attempts, 3);
    assert.deepEqual(dl[0]!.error, { name: "RangeError", message: "boom" });
    assert.equal(s.stats().failures, 3);
    assert.equal(await s.replayDeadLetters(), 1);
    assert.equal(await s.call("get"), 1);
    assert.equal(
      (await s.deadLetters()).length,
      1,
      "it failed again and is back in the dead-letter queue",
    );
  });

  Deno.test(`${name}: a timed-out call cleans its reply key; priority calls bypass the queue`, async () => {
    await using storage = await open();
    await using s = await DurableServer.start(Counter, 7, {
      storage,
      tenant: ["t"],
      consumeBatch: 2,
    });
    // A handle that does not consume: its calls go through the queue and reply keys.
    await using caller = await DurableServer.start(Counter, 7, {
      storage,
      tenant: ["t"],
      consume: false,
    });
    const slow = caller.call({ slow: 300 });
    await assert.rejects(() => caller.call("get", { timeoutMs: 50 }), DurableTimeoutError);
    assert.equal(await s.priorityCall("get"), 7, "answered while the queue is busy");
    assert.equal(await slow, 7);
    await s.collectGarbage();
    const replies = await storage.list({ prefix: ["t", "reply"] });
    assert.equal(replies.length, 0, "no reply key is left behind");
    // The inline path (idle queue) honours the timeout too.
    await using inline = await DurableServer.start(Counter, 1, { storage, tenant: ["u"] });
    await assert.rejects(() => inline.call({ slow: 200 }, { timeoutMs: 30 }), DurableTimeoutError);
    assert.equal(await inline.call("get"), 1);
    await new Promise((r) => setTimeout(r, 250)); // let the abandoned callback finish
  });
}

Deno.test("a 1 MiB state round-trips on Deno KV; an oversized message is refused", async () => {
  await using storage = await DenoKvStorage.open(":memory:");
  const Blob: DurableBehaviour<Uint8Array, "size" | "sum", Uint8Array> = {
    init: () => ({ state: new Uint8Array(0) }),
    handleCall: (m, _f, s) => ({
      reply: m === "size" ? s.length : s.reduce((a, b) => a + b, 0),
      state: s,
    }),
    handleCast: (m) => ({ state: m }),
  };
  await using s = await DurableServer.start(Blob, null, { storage, tenant: ["blob"] });
  const big = new Uint8Array(1024 * 1024);
  for (let i = 0; i < big.length; i++) big[i] = i % 251;
  await s.priorityCast(big);
  assert.equal(await s.call("size"), big.length);
  const expected = big.reduce((a, b) => a + b, 0);
  await using again = await DurableServer.start(Blob, null, {
    storage,
    tenant: ["blob"],
    cache: false,
  });
  assert.equal(await again.priorityCall("sum"), expected, "read back from storage, not the cache");
  await assert.rejects(() => s.cast(new Uint8Array(70_000)), StorageLimitError);
});

Deno.test("actions run after the commit with the committed state; dead-lettered calls reject", async () => {
  await using storage = new MemoryStorage();
  const seen: number[] = [];
  const B: DurableBehaviour<number, "inc" | "bad", never> = {
    init: () => ({ state: 0 }),
    handleCall: (m, _f, n) => {
      if (m === "bad") throw new TypeError("nope");
      return { reply: n + 1, state: n + 1, actions: [(s) => void seen.push(s)] };
    },
    handleCast: (_m, n) => ({ state: n }),
  };
  await using s = await DurableServer.start(B, null, { storage, tenant: ["a"], maxAttempts: 2 });
  assert.equal(await s.call("inc"), 1);
  assert.equal(await s.call("inc"), 2);
  assert.deepEqual(seen, [1, 2]);
  const e = await s.call("bad").catch((e) => e);
  assert.ok(
    e instanceof DeadLetterError && e.attempts === 2 && e.lastName === "TypeError",
    String(e),
  );
});

Deno.test("lock: handleLocked runs outside the transaction; queued messages wait for it", async () => {
  await using storage = new MemoryStorage();
  const gate = Promise.withResolvers<void>();
  const log: string[] = [];
  const B: DurableBehaviour<string[], "read", string, never, string[]> = {
    init: () => ({ state: [] }),
    handleCall: (_m, _f, s) => ({ reply: s, state: s }),
    handleCast: (m, s) => (m === "long" ? { lock: [...s, "locked"] } : { state: [...s, m] }),
    handleLocked: async (_ev, _msg, s) => {
      log.push("locked work started");
      await gate.promise;
      return { state: [...s, "unlocked"] };
    },
  };
  await using s = await DurableServer.start(B, null, { storage, tenant: ["l"] });
  await s.cast("a");
  await s.cast("long");
  await s.cast("b");
  const read = s.call("read");
  // While locked, the queued cast and call wait; a priority call does not.
  for (let i = 0; i < 100 && log.length === 0; i++) await new Promise((r) => setTimeout(r, 5));
  assert.deepEqual(await s.priorityCall("read"), ["a", "locked"]);
  gate.resolve();
  assert.deepEqual(await read, ["a", "locked", "unlocked", "b"]);
});

Deno.test("kill deletes state, queue and waiting reply keys", async () => {
  await using storage = new MemoryStorage();
  const s = await DurableServer.start(Counter, 3, { storage, tenant: ["k"], consume: false });
  await s.cast({ add: 1 });
  const waiting = s.call("get", { timeoutMs: 5000 }).catch((e) => e);
  await s.kill("done");
  assert.equal((await waiting).name, "DurableKilledError");
  assert.equal((await storage.list({ prefix: ["k"] })).length, 0);
  assert.equal(await s.stopped, "done");
});

Deno.test("consumeBatch: many messages per commit, and two consumers in one process share the work", async () => {
  await using storage = new MemoryStorage();
  const a = await DurableServer.start(Counter, 0, { storage, tenant: ["b"], consumeBatch: 32 });
  const b = await DurableServer.start(Counter, 0, { storage, tenant: ["b"], consumeBatch: 32 });
  const producer = await DurableServer.start(Counter, 0, {
    storage,
    tenant: ["b"],
    consume: false,
  });
  for (let i = 0; i < 20; i++) {
    await producer.castBatch(Array.from({ length: 50 }, () => ({ add: 1 })));
  }
  assert.equal(await producer.call("get", { timeoutMs: 10_000 }), 1000);
  const commits = a.stats().commits + b.stats().commits;
  assert.ok(commits < 200, `batched: ${commits} commits for 1000 messages`);
  assert.equal(a.stats().processed + b.stats().processed, 1001);
  await Promise.all([a.stop(), b.stop(), producer.stop()]);
});

Deno.test("inline calls never overtake a message queued by another handle", async () => {
  for (
    const open of [() => Promise.resolve(new MemoryStorage()), () => DenoKvStorage.open(":memory:")]
  ) {
    await using storage = await open();
    await using a = await DurableServer.start(Counter, 0, { storage, tenant: ["i"] });
    await using b = await DurableServer.start(Counter, 0, {
      storage,
      tenant: ["i"],
      consume: false,
    });
    assert.equal(await a.call("get"), 0); // inline: a now believes the queue idle
    for (let i = 1; i <= 20; i++) {
      await b.cast({ add: 1 });
      // The cast was queued first: the call must see its effect.
      assert.equal(await a.call("get"), i);
    }
    assert.ok(a.stats().processed >= 40);
  }
});

Deno.test("a callback's { stop } commits its state and stops the handle with that reason", async () => {
  await using storage = new MemoryStorage();
  const B: DurableBehaviour<number, "get", "halt" | "inc"> = {
    init: () => ({ state: 0 }),
    handleCall: (_m, _f, n) => ({ reply: n, state: n }),
    handleCast: (m, n) => (m === "halt" ? { stop: "asked to", state: n + 100 } : { state: n + 1 }),
  };
  const s = await DurableServer.start(B, null, { storage, tenant: ["s"] });
  await s.cast("inc");
  await s.cast("halt");
  assert.equal(await s.stopped, "asked to");
  await assert.rejects(() => s.cast("inc"), DurableStoppedError);
  await using again = await DurableServer.start(B, null, { storage, tenant: ["s"] });
  assert.equal(await again.call("get"), 101, "the stopping callback's state was committed");
});

/** A counter whose calls answer the count before them; `check` may throw for a message first. */
function sequence<M extends string = "next">(
  check: (m: M) => void = () => {},
): DurableBehaviour<number, M, never, never, number> {
  return {
    init: () => ({ state: 0 }),
    handleCall: (m, _f, n) => {
      check(m);
      return { reply: n, state: n + 1 };
    },
    handleCast: (_m, n) => ({ state: n }),
  };
}

Deno.test("concurrent calls of one handle on an idle queue go inline together: up to consumeBatch per commit, in order", async () => {
  // A storage with a round trip (as etcd's): each commit takes 3 ms.
  const memory = new MemoryStorage();
  let commits = 0;
  const storage: Storage = new Proxy(memory, {
    get(target, key) {
      const v = Reflect.get(target, key, target);
      if (key === "commit") {
        return async (...args: Parameters<Storage["commit"]>) => {
          commits++;
          await new Promise((r) => setTimeout(r, 3));
          return await target.commit(...args);
        };
      }
      return typeof v === "function" ? v.bind(target) : v;
    },
  });
  await using s = await DurableServer.start(sequence(), null, {
    storage,
    tenant: ["g"],
    consumeBatch: 16,
  });
  commits = 0;
  const replies = await Promise.all(Array.from({ length: 64 }, () => s.call("next")));
  assert.deepEqual(
    replies,
    Array.from({ length: 64 }, (_, i) => i),
    "each call saw the ones before",
  );
  // 64 calls, at most 16 per commit: 4 commits, a few more when the first goes alone.
  assert.ok(commits <= 8, `${commits} commits for 64 calls`);
  assert.equal(s.stats().processed, 64);
  assert.equal(await s.call("next"), 64, "the state is committed");
  await memory.close();
});

Deno.test("an inline batch cut by a throwing call: those before commit, it and those after go to the queue in order", async () => {
  await using storage = new MemoryStorage();
  const Seq = sequence<"next" | "boom">((m) => {
    if (m === "boom") throw new RangeError("boom");
  });
  await using s = await DurableServer.start(Seq, null, {
    storage,
    tenant: ["cut"],
    consumeBatch: 8,
    maxAttempts: 2,
  });
  await s.call("next"); // the handle has seen the queue idle: the next batch goes optimistically
  const calls = (["next", "next", "boom", "next", "next"] as const).map((m) =>
    s.call(m).then((r) => r, (e) => (e as Error).name)
  );
  assert.deepEqual(await Promise.all(calls), [1, 2, "DeadLetterError", 3, 4]);
  assert.equal(await s.call("next"), 5);
});

Deno.test("calls waiting behind an inline batch that was cut go to the queue after it: issue order holds", async () => {
  await using storage = new MemoryStorage();
  let flakyRuns = 0;
  const Seq = sequence<"next" | "flaky">((m) => {
    // Throws the first time only: the inline attempt fails, the queue's retry succeeds.
    if (m === "flaky" && flakyRuns++ === 0) throw new Error("not yet");
  });
  await using s = await DurableServer.start(Seq, null, {
    storage,
    tenant: ["behind"],
    consumeBatch: 2,
    maxAttempts: 3,
  });
  await s.call("next");
  const calls = (["next", "next", "flaky", "next", "next", "next"] as const).map((m) => s.call(m));
  // Batches of two: [next], [next, flaky] cut at flaky; the three behind wait for it.
  assert.deepEqual(await Promise.all(calls), [1, 2, 3, 4, 5, 6]);
});
