// Data publishers at their seams: a rolling upgrade whose new version serves
// old peers by plain messages (views complete while versions are mixed, no
// resync loop), and a view callback that throws during the rebuild.

import assert from "node:assert/strict";
import { DataPublisher, type PublisherModule } from "../mod.ts";
import { tags } from "./_tags_module.ts";
import { converged, eventually, startNode } from "./_helpers.ts";

Deno.test("rolling upgrade: a v2 publisher with 3 updates serves a new v1 peer by plain messages; the v1 view is complete while versions are mixed, and the link is quiet", async () => {
  await using a = await startNode("a");
  await using b = await startNode("b");
  await b.join(a.spec);
  await converged([a, b], ["a", "b"]);
  await using v2 = await DataPublisher.start(a, "tags", tags(2), { syncIntervalMs: 500 });
  await v2.update({ add: ["x"], remove: [] });
  await v2.update({ add: ["y"], remove: [] });
  await v2.update({ add: ["z"], remove: [] });
  const framesBefore = a.stats().framesOut;
  await using v1 = await DataPublisher.start(b, "tags", tags(1), { syncIntervalMs: 500 });
  const seen = (p: typeof v1, node: string) => [...(p.view.get(node) ?? [])].sort().join(",");
  await eventually(
    () => seen(v1, "a") === "x,y,z",
    "v1 sees v2's data while versions are mixed",
    3000,
  );
  await v2.update({ add: ["w"], remove: ["x"] });
  await eventually(() => seen(v1, "a") === "w,y,z", "and its 4th update", 3000);
  await v1.update({ add: ["old"], remove: [] });
  await eventually(() => seen(v2, "b") === "old", "v2 sees v1's data");
  // Three sync ticks later the link is quiet: no resync loop.
  await new Promise((r) => setTimeout(r, 1500));
  const frames = a.stats().framesOut - framesBefore;
  console.log(`frames sent by the v2 node in ~2 s of mixed versions: ${frames}`);
  assert.ok(frames < 100, `${frames} frames: a resync loop`);
  assert.equal(seen(v1, "a"), "w,y,z");
});

/** A module whose view callback throws on "poison", in the update and in the rebuild alike. */
function poisoned(): PublisherModule<
  Map<string, number>,
  [string, number][],
  Map<string, number>,
  string,
  null
> {
  let armed = false;
  return {
    version: () => 1,
    initLocalData: () => new Map(),
    initGlobalView: () => new Map(),
    dataDiff: (o, n) =>
      [...new Set([...o.keys(), ...n.keys()])].map((k) => [k, (n.get(k) ?? 0) - (o.get(k) ?? 0)]),
    updateLocalData: (u, d) => {
      for (const [k, x] of u) d.set(k, (d.get(k) ?? 0) + x);
      return d;
    },
    updateGlobalViewAndNotify: (node, u, _s, view) => {
      for (const [k, x] of u) {
        // Once poisoned, every later call throws halfway (the rebuild too).
        if (k === "poison") armed = true;
        if (armed && view.size >= 1) throw new RangeError("poisoned view");
        view.set(`${node}/${k}`, (view.get(`${node}/${k}`) ?? 0) + x);
      }
      return view;
    },
    newSubscription: () => null,
    stopGlobalView: () => {},
    translateLocalData: (_m, _p, d) => d,
    translateUpdate: (_m, _p, u) => u,
  };
}

Deno.test("update() is all or nothing for the view even when the view callback throws during the rebuild", async () => {
  await using a = await startNode("a");
  await using p = await DataPublisher.start(a, "p", poisoned(), { standalone: true });
  await p.update([["k1", 1], ["k2", 2]]);
  const before = JSON.stringify([...p.view]);
  await assert.rejects(p.update([["k3", 3], ["poison", 1]]), /poisoned view/);
  assert.equal(JSON.stringify([...p.view]), before, "the view is as it was");
  assert.equal(JSON.stringify([...p.localData]), JSON.stringify([["k1", 1], ["k2", 2]]));
});
