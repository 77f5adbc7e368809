// Issue 29, fault 3: the garbage collector of a handle whose wall clock is 11
// minutes ahead deleted live state chunks: it judged a chunk generation's age
// by the writer's wall clock (in its name) against its own. A generation
// written between the GC's read of the header and its listing of the chunks
// looked 11 minutes old, not current, and was deleted; the state could not be
// read after that. The GC now decides from what it saw itself (a generation
// is removed only after this handle has seen it unreferenced, unchanged, for
// the grace period on its own monotonic clock) and its deletes are checked
// against the header it read.

import assert from "node:assert/strict";
import {
  type Clock,
  type DurableBehaviour,
  DurableServer,
  type Key,
  MemoryStorage,
  systemClock,
} from "../mod.ts";
import { encodeValue } from "../protocol.ts";

type Big = { n: number; pad: string };
const Behaviour: DurableBehaviour<Big, "get" | "bump", never, never, number> = {
  init: () => ({ state: { n: 0, pad: "x".repeat(200_000) } }), // chunked: over one value
  handleCall: (msg, _from, s) =>
    msg === "get" ? { reply: s.n, state: s } : { reply: s.n + 1, state: { ...s, n: s.n + 1 } },
  handleCast: (_m, s) => ({ state: s }),
};

/** A storage whose next listing of the state's chunks first lets `before` run (a writer commits). */
class Interposed extends MemoryStorage {
  before: (() => Promise<void>) | undefined;
  override async list(
    selector: Parameters<MemoryStorage["list"]>[0],
    options?: Parameters<MemoryStorage["list"]>[1],
  ) {
    const p = (selector as { prefix?: Key }).prefix;
    if (this.before !== undefined && p?.length === 3 && p[0] === "t" && p[2] === "state") {
      const f = this.before;
      this.before = undefined;
      await f();
    }
    return super.list(selector, options);
  }
}

for (const skewMinutes of [11, 0, -11]) {
  Deno.test(`durable GC with a wall clock ${skewMinutes} minutes off: live state is never deleted`, async () => {
    await using storage = new Interposed();
    await using a = await DurableServer.start(Behaviour, null, { storage, tenant: ["t"] });
    const skewed: Clock = { ...systemClock, wallNow: () => Date.now() + skewMinutes * 60_000 };
    await using b = await DurableServer.start(Behaviour, null, {
      storage,
      tenant: ["t"],
      consume: false,
      clock: skewed,
    });
    assert.equal(await a.call("bump"), 1);
    // While b's GC runs (after it read the header), a writes a new state.
    storage.before = async () => void await a.call("bump");
    await b.collectGarbage();
    assert.equal(storage.before, undefined, "the writer ran in the middle of the GC");
    // Collected again later: still nothing live goes.
    await b.collectGarbage();
    await using fresh = await DurableServer.start(Behaviour, null, {
      storage,
      tenant: ["t"],
      consume: false,
      cache: false,
    });
    assert.equal(await fresh.priorityCall("get"), 2, "the state reads after the GC");
    assert.equal(await a.call("bump"), 3);
  });
}

Deno.test("durable GC still collects: an orphaned generation and an abandoned reply, after their time on the handle's own clock", async () => {
  await using storage = new MemoryStorage();
  let shift = 0;
  const clock: Clock = { ...systemClock, now: () => performance.now() + shift };
  const Small: DurableBehaviour<number, "get", never, never, number> = {
    init: () => ({ state: 0 }),
    handleCall: (_msg, _from, s) => ({ reply: s, state: s }),
    handleCast: (_m, s) => ({ state: s }),
  };
  await using a = await DurableServer.start(Small, null, { storage, tenant: ["t"], clock });
  // An orphaned generation: chunks a crashed writer left behind.
  const orphan: Key = ["t", "\u0000murmur.durable", "state", "zz-orphan", 0];
  await storage.commit([], [{ type: "set", key: orphan, value: new Uint8Array(3) }]);
  // A reply key whose caller crashed (a 10 ms call, 60 s to keep its reply), and one of an
  // older version (no lifetime: judged by its wall-clock expiry), both past due.
  const reply = (id: string): Key => ["t", "\u0000murmur.durable", "reply", id];
  await storage.commit([], [
    { type: "set", key: reply("crashed"), value: encodeValue([0, null, Date.now(), 60_010]) },
    { type: "set", key: reply("old"), value: encodeValue([0, null, Date.now() - 1]) },
  ]);
  const replies = () => storage.list({ prefix: ["t", "\u0000murmur.durable", "reply"] });
  assert.equal((await replies()).length, 2);
  assert.equal(await a.collectGarbage(), 0, "first sighting: nothing goes");
  shift += 61_000; // past the reply's lifetime and replyTtlMs, not the orphan grace
  assert.equal(await a.collectGarbage(), 2);
  assert.equal((await replies()).length, 0);
  assert.equal((await storage.get(orphan)).value !== null, true);
  shift += 10 * 60_000;
  assert.equal(await a.collectGarbage(), 1, "the orphaned generation, after the grace");
  assert.equal((await storage.get(orphan)).value, null);
  assert.equal(await a.call("get"), 0, "the live state is untouched");
});
