import assert from "node:assert/strict";
import { KnownNodes } from "./_hyparview_known.ts";
import type { NodeSpec } from "./spec.ts";

const spec = (name: string, incarnation = 1): NodeSpec => ({
  name,
  incarnation,
  listenAddrs: [],
  channels: {},
});
const names = (k: KnownNodes) => [...k.values()].map((s) => s.name);

Deno.test("hyparview known nodes: past the bound the oldest quarter goes, the rest keep their order", () => {
  const k = new KnownNodes(8, () => "self");
  for (let i = 0; i < 8; i++) k.learn(spec(`n${i}`));
  k.learn(spec("self")); // never remembered
  assert.deepEqual(names(k), ["n0", "n1", "n2", "n3", "n4", "n5", "n6", "n7"]);
  k.learn(spec("n8"));
  assert.deepEqual(names(k), ["n2", "n3", "n4", "n5", "n6", "n7", "n8"]);
  // Lookups and deletes work on what was kept.
  assert.equal(k.get("n1"), undefined);
  assert.equal(k.get("n5")?.name, "n5");
  k.delete("n5");
  assert.equal(k.get("n5"), undefined);
  // Learnt again, a name becomes the newest; an older incarnation is ignored.
  k.learn(spec("n2", 2));
  k.learn(spec("n3", 0));
  assert.deepEqual(names(k), ["n3", "n4", "n6", "n7", "n8", "n2"]);
  assert.equal(k.get("n2")?.incarnation, 2);
  for (let i = 9; i < 12; i++) k.learn(spec(`n${i}`));
  assert.deepEqual(names(k), ["n6", "n7", "n8", "n2", "n9", "n10", "n11"]);
});
