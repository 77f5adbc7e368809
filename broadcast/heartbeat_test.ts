import assert from "node:assert/strict";
import { type Heartbeat, HeartbeatHandler } from "./heartbeat.ts";

const beat = (node: string, epoch: number, counter: number): Heartbeat => ({
  node,
  epoch,
  counter,
  timestamp: 1_000 + counter,
});

Deno.test("heartbeat: a late, never-seen older heartbeat is new (delivered, no prune), and a graft of an older id is answered", () => {
  const hb = new HeartbeatHandler("a");
  assert.equal(hb.merge(["b", 1, 5], beat("b", 1, 5)), true);
  // Counter 3 was never seen here (it travelled a slower path): as the seed's backend, new.
  assert.equal(hb.isStale(["b", 1, 3]), false);
  assert.equal(hb.merge(["b", 1, 3], beat("b", 1, 3)), true);
  assert.equal(hb.merge(["b", 1, 3], beat("b", 1, 3)), false, "seen now: a duplicate");
  assert.equal(hb.isStale(["b", 1, 3]), true);
  assert.equal(hb.latest("b")?.counter, 5, "the newest stays the newest");
  // A graft of an older id that is still held is answered with it.
  assert.deepEqual(hb.graft(["b", 1, 3]), { ok: beat("b", 1, 3) });
  assert.deepEqual(hb.graft(["b", 1, 5]), { ok: beat("b", 1, 5) });
  assert.deepEqual(hb.graft(["b", 1, 4]), { error: "unknown heartbeat" });
  // A new epoch (the node restarted) starts afresh; the old epoch's beats are stale.
  assert.equal(hb.merge(["b", 2, 1], beat("b", 2, 1)), true);
  assert.equal(hb.merge(["b", 1, 6], beat("b", 1, 6)), false);
  assert.equal(hb.graft(["b", 1, 5]), "stale");
});

Deno.test("heartbeat: what is kept per origin and how many origins are bounded", () => {
  const hb = new HeartbeatHandler("a", { historyMax: 4, originsMax: 2 });
  for (let i = 1; i <= 10; i++) assert.equal(hb.merge(["b", 1, i], beat("b", 1, i)), true);
  // Older than the kept window: cannot be told from a duplicate, so stale.
  assert.equal(hb.isStale(["b", 1, 2]), true);
  assert.equal(hb.merge(["b", 1, 2], beat("b", 1, 2)), false);
  assert.equal(hb.graft(["b", 1, 2]), "stale");
  assert.deepEqual(hb.graft(["b", 1, 8]), { ok: beat("b", 1, 8) });
  hb.merge(["c", 1, 1], beat("c", 1, 1));
  hb.merge(["d", 1, 1], beat("d", 1, 1)); // a third origin: the least recently heard goes
  assert.equal(hb.latest("b"), undefined);
  assert.equal(hb.latest("d")?.counter, 1);
  assert.throws(() => new HeartbeatHandler("a", { historyMax: 0 }), /historyMax/);
});
