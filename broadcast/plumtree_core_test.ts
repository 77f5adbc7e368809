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

Deno.test("plumtree core: a new neighbour is announced what was delivered in the last catchupMs, at most catchupIdsMax", () => {
  const core = new PlumtreeCore("a", {
    random: seededRandom(3),
    catchupMs: 1000,
    catchupIdsMax: 3,
  });
  const announcedTo = (sends: ReturnType<PlumtreeCore["lazyTick"]>, peer: string) =>
    sends.filter((s) => s.to === peer && s.msg[0] === PT.IHave).flatMap((s) =>
      (s.msg[2] as [string, string, [number, number][]][]).flatMap((g) => g[2].map(([id]) => id))
    ).sort((x, y) => x - y);
  core.setMembers(["a", "b"], 0);
  for (let i = 0; i < 5; i++) core.broadcast("h", i, null, 0);
  core.broadcast("h", 5, null, 500);
  core.lazyTick(600);
  // At 1200 only id 5 (delivered at 500) is younger than catchupMs.
  core.setMembers(["a", "b", "c"], 1200);
  assert.deepEqual(announcedTo(core.lazyTick(1200), "c"), [5]);
  for (let i = 6; i < 10; i++) core.broadcast("h", i, null, 1300);
  core.lazyTick(1300);
  // At 1300, ids 5 to 9 are recent, but only the newest 3 are announced.
  core.setMembers(["a", "b", "c", "d"], 1300);
  assert.deepEqual(announcedTo(core.lazyTick(1300), "d"), [7, 8, 9]);
});

Deno.test("plumtree core: catchupIdsMax 0 turns catch-up off; bad values are refused by name", () => {
  const core = new PlumtreeCore("a", { random: seededRandom(4), catchupIdsMax: 0 });
  core.setMembers(["a", "b"], 0);
  core.broadcast("h", 1, null, 0);
  core.lazyTick(0);
  core.setMembers(["a", "b", "c"], 1);
  assert.equal(core.lazyTick(1).filter((s) => s.to === "c" && s.msg[0] === PT.IHave).length, 0);
  assert.throws(
    () => new PlumtreeCore("a", { random: seededRandom(5), catchupIdsMax: -1 }),
    /catchupIdsMax/,
  );
  assert.throws(
    () => new PlumtreeCore("a", { random: seededRandom(5), catchupMs: -5 }),
    /catchupMs/,
  );
});
