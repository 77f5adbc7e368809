// Durable callbacks run once per message: the first call after a cast, after
// info or priorityCast, on an idle server, and a queued call whose caller
// timed out while the consumer ran it. And a priority request answered with
// { lock } on a handle that does not consume gets handleLocked's reply.

import assert from "node:assert/strict";
import {
  DenoKvStorage,
  type DurableBehaviour,
  DurableServer,
  DurableTimeoutError,
  MemoryStorage,
  type Storage,
} from "../mod.ts";

interface Counts {
  calls: Map<string, number>;
  casts: number;
}

type Call = { tag: string; slowMs?: number };

function counting(counts: Counts): DurableBehaviour<number, Call, number, number, number> {
  return {
    init: () => ({ state: 0 }),
    handleCall: async (msg, _from, n) => {
      counts.calls.set(msg.tag, (counts.calls.get(msg.tag) ?? 0) + 1);
      if (msg.slowMs !== undefined) await new Promise((r) => setTimeout(r, msg.slowMs));
      return { reply: n, state: n + 1 };
    },
    handleCast: (add, n) => {
      counts.casts++;
      return { state: n + add };
    },
    handleInfo: (add, n) => ({ state: n + add }),
  };
}

for (
  const [name, open] of [
    ["memory", () => Promise.resolve(new MemoryStorage())],
    ["deno kv", () => DenoKvStorage.open(":memory:")],
  ] as [string, () => Promise<Storage>][]
) {
  Deno.test(`${name}: handleCall runs once per call: idle, after info, after priorityCast, after cast (and its consumer), after a caller's timeout`, async () => {
    await using storage = await open();
    const counts: Counts = { calls: new Map(), casts: 0 };
    await using s = await DurableServer.start(counting(counts), null, {
      storage,
      tenant: ["once"],
    });
    await s.call({ tag: "idle-1" });
    await s.call({ tag: "idle-2" });
    await s.info(5);
    await s.call({ tag: "after-info" });
    await s.priorityCast(1);
    await s.call({ tag: "after-priorityCast" });
    await s.cast(1);
    await s.call({ tag: "after-cast" });
    await s.cast(1);
    await s.cast(1);
    await s.call({ tag: "after-two-casts" });
    // A queued call whose caller gives up while the consumer runs it.
    await s.cast(1); // the call goes through the queue, behind this cast
    await assert.rejects(
      s.call({ tag: "timed-out", slowMs: 150 }, { timeoutMs: 50 }),
      DurableTimeoutError,
    );
    await new Promise((r) => setTimeout(r, 400));
    await s.call({ tag: "last" });
    const got = Object.fromEntries(counts.calls);
    assert.deepEqual(got, {
      "idle-1": 1,
      "idle-2": 1,
      "after-info": 1,
      "after-priorityCast": 1,
      "after-cast": 1,
      "after-two-casts": 1,
      "timed-out": 1,
      "last": 1,
    });
    assert.equal(counts.casts, 5, "4 queued casts and a priorityCast");
    // Every call changed the state once: 8 calls, 4 casts of 1, info 5, priorityCast 1.
    assert.equal(await s.priorityCall({ tag: "read" }), 8 + 4 + 5 + 1);
  });

  Deno.test(`${name}: a priority request answered { lock } on a consume: false handle gets handleLocked's reply; the queue moves on`, async () => {
    await using storage = await open();
    let locked = 0;
    const B: DurableBehaviour<number, "lock" | "get", number, never, string | number> = {
      init: () => ({ state: 0 }),
      handleCall: (msg, _from, n) => msg === "lock" ? { lock: n } : { reply: n, state: n },
      handleCast: (add, n) => ({ state: n + add }),
      handleLocked: (_event, _msg, n) => {
        locked++;
        return { reply: "done in the lock", state: n + 100 };
      },
    };
    await using consumer = await DurableServer.start(B, null, {
      storage,
      tenant: ["lk"],
      lockTimeoutMs: 8000,
    });
    await using caller = await DurableServer.start(B, null, {
      storage,
      tenant: ["lk"],
      consume: false,
      lockTimeoutMs: 8000,
    });
    const t0 = Date.now();
    assert.equal(await caller.priorityCall("lock"), "done in the lock");
    assert.equal(locked, 1);
    await caller.cast(1);
    assert.equal(await caller.call("get", { timeoutMs: 3000 }), 101);
    assert.ok(Date.now() - t0 < 3000, `took ${Date.now() - t0} ms`);
    assert.equal((await consumer.status()).lock, undefined);
  });
}
