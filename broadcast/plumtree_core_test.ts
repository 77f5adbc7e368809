import assert from "node:assert/strict";
import { seededRandom } from "../membership/clock.ts";
import { PlumtreeCore, PT } from "./plumtree_core.ts";

Deno.test("plumtree core: past lazyOutstandingMax the oldest announcements go, the newest are announced in order", () => {
  const core = new PlumtreeCore("a", {
    random: seededRandom(1),
    lazyOutstandingMax: 100,
    catchupIdsMax: 0,
  });
  core.setMembers(["a", "b"], 0);
  core.lazyTick(0); // the NEIGHBOR
  for (let i = 0; i < 250; i++) core.broadcast("h", i, null, 1);
  assert.equal(core.stats.lazyDropped, 150);
  assert.equal(core.outstandingCount, 100);
  const ihave = core.lazyTick(2).filter((s) => s.msg[0] === PT.IHave);
  const ids = ihave.flatMap((s) =>
    (s.msg[2] as [string, string, [number, number][]][]).flatMap((g) => g[2].map(([id]) => id))
  );
  assert.deepEqual(ids, Array.from({ length: 100 }, (_, i) => 150 + i));
});

Deno.test("plumtree core: a drop at the bound is O(1), not a shift of the whole set", () => {
  // 300,000 ids through a per-peer bound of 100,000 without a lazy tick: with a
  // linear drop (Array.splice(0, 1) per id) this is 200,000 shifts of 100,000
  // entries, seconds of CPU; in O(1) it takes a fraction of a second here.
  const core = new PlumtreeCore("a", {
    random: seededRandom(2),
    lazyOutstandingMax: 100_000,
    idsRememberedMax: 1000,
    catchupIdsMax: 0,
  });
  core.setMembers(["a", "b"], 0);
  const t0 = performance.now();
  for (let i = 0; i < 300_000; i++) core.broadcast("h", i, null, 1);
  const ms = performance.now() - t0;
  assert.equal(core.stats.lazyDropped, 200_000);
  assert.equal(core.outstandingCount, 100_000);
  assert.ok(ms < 2500, `300,000 broadcasts at the lazy bound took ${ms.toFixed(0)} ms`);
});
