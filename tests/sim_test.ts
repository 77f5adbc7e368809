// The simulator's small set, in CI: 100 nodes, two seeds, the real HyParView,
// full-mesh and Plumtree cores (`deno task sim` runs the full set).

import assert from "node:assert/strict";
import {
  runPublisherScenario,
  runScenario,
  scenario,
  type ScenarioKind,
  Simulation,
} from "../protocol.ts";

const SEEDS = (Deno.env.get("SIM_SEEDS") ?? "1,2").split(",").map(Number);

const cases: [ScenarioKind, "hyparview" | "full-mesh", number][] = [
  ["one", "hyparview", 0.05],
  ["several", "hyparview", 0.6],
  ["loss10", "hyparview", 0.6],
  ["kill30", "hyparview", 0.08],
  ["partition", "hyparview", 0.1],
  ["churn", "hyparview", 0.3],
  ["one", "full-mesh", 0.05],
];

for (const [kind, strategy, rmrMax] of cases) {
  Deno.test(`sim: ${kind}-100 on ${strategy}, seeds ${SEEDS.join(",")} (SIM_SEEDS=...)`, () => {
    for (const seed of SEEDS) {
      const r = runScenario(scenario(kind, 100, strategy), seed);
      console.log(JSON.stringify(r));
      assert.equal(r.missed, 0, `seed ${seed}: every live node receives every broadcast`);
      assert.ok(r.delivered > 0);
      assert.ok(r.rmr <= rmrMax, `seed ${seed}: rmr ${r.rmr} <= ${rmrMax}`);
    }
  });
}

Deno.test("sim: the same seed gives the same run, number for number", () => {
  const strip = (r: Record<string, unknown>) => JSON.stringify({ ...r, wallMs: 0 });
  for (const kind of ["churn", "partition"] as const) {
    const a = runScenario(scenario(kind, 60), 7), b = runScenario(scenario(kind, 60), 7);
    assert.equal(strip({ ...a }), strip({ ...b }));
    const c = runScenario(scenario(kind, 60), 8);
    assert.notEqual(strip({ ...a }), strip({ ...c }), "another seed, another run");
  }
});

Deno.test("sim: bad options are refused by name", () => {
  assert.throws(
    () => new Simulation({ seed: 1, strategy: "hyparview", pingIntervalMs: 0 }),
    /pingIntervalMs/,
  );
  assert.throws(
    () => new Simulation({ seed: 1, strategy: "hyparview", lazyTickMs: NaN }),
    /lazyTickMs/,
  );
  assert.throws(() => new Simulation({ seed: 1, strategy: "hyparview", loss: 1 }), /loss/);
  assert.throws(() => new Simulation({ seed: 1, strategy: "ring" as never }), /unknown strategy/);
});

/**
 * Of `seeds` clusters of `n` HyParView nodes joined one after another, 20 ms
 * apart, each at a random earlier node (as tests/publisher_overlay_test.ts
 * starts its overlay), the seeds still split 20 s after the last join.
 */
function splitAfterJoins(n: number, activeViewSize: number, seeds: number): number[] {
  const split: number[] = [];
  for (let seed = 1; seed <= seeds; seed++) {
    const sim = new Simulation({
      seed,
      strategy: "hyparview",
      hyparview: { activeViewSize, passiveViewSize: 8 },
    });
    let x = seed;
    const next = () => (x = (x * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    const names: string[] = [];
    for (let i = 0; i < n; i++) {
      names.push(sim.addNode(names[Math.floor(next() * names.length)]));
      sim.runFor(20);
    }
    sim.runFor(20_000);
    if (sim.overlay().components > 1) split.push(seed);
  }
  return split;
}

Deno.test("sim: 24 nodes with active view 4 (the publisher overlay test's) are one component 20 s after joining, in 300 of 300 clusters", () => {
  // With active view 3 some of the same clusters stay split (GUIDE, HyParView: "use 4 or
  // more in small clusters"), a few for good: printed, not failed.
  const three = splitAfterJoins(24, 3, 300);
  console.log(`active view 3: split 20 s after joining: seeds ${three.join(", ") || "none"}`);
  assert.deepEqual(splitAfterJoins(24, 4, 300), [], "clusters split with active view 4");
});

Deno.test("sim: nodes short of neighbours do not stay cut off: of 300 small clusters (active view 3), none is split with a node short after 120 s", () => {
  // On the earlier code 1 of these 300 clusters was split after 120 s (3 after 40 s) with nodes
  // short, for good: a few nodes
  // holding only each other, every node they knew full and refusing low-priority requests.
  // A split into components whose nodes are all full is not repaired (nothing in HyParView
  // notices it; README, HyParView): counted and printed, not failed.
  const short: string[] = [], full: string[] = [];
  for (const n of [10, 16]) {
    for (let seed = 1; seed <= 150; seed++) {
      const sim = new Simulation({
        seed,
        strategy: "hyparview",
        hyparview: { activeViewSize: 3, passiveViewSize: 8 },
      });
      const names: string[] = [];
      for (let i = 0; i < n; i++) {
        names.push(sim.addNode(names[(seed * 7919 + i * 104729) % Math.max(1, names.length)]));
        sim.runFor(50);
      }
      sim.runFor(120_000);
      if (sim.overlay().components === 1) continue;
      const all = sim.liveNodes().every((x) => sim.neighbours(x).length === 3);
      (all ? full : short).push(`${n} nodes, seed ${seed}`);
    }
  }
  console.log(
    `split into full components (not repaired): ${full.length ? full.join("; ") : "none"}`,
  );
  assert.deepEqual(short, [], "clusters left split with nodes short of neighbours");
});

Deno.test(`sim: presence-churn-100 (publishers over HyParView): converges within 10 s after tracking and after churn, no stale entry; the same seed gives the same line (SIM_SEEDS=...)`, () => {
  const strip = (r: Record<string, unknown>) => JSON.stringify({ ...r, wallMs: 0 });
  for (const seed of SEEDS) {
    const r = runPublisherScenario("presence-churn", 100, seed);
    console.log(JSON.stringify(r));
    assert.ok(r.convergedInitialMs! >= 0 && r.convergedInitialMs! <= 10_000, `seed ${seed}`);
    assert.ok(r.convergedMs >= 0 && r.convergedMs <= 10_000, `seed ${seed}: ${r.convergedMs}`);
    assert.equal(r.staleEntries, 0, `seed ${seed}: no dead node's entry is shown`);
    assert.equal(r.missed, 0, `seed ${seed}: every live view equals the truth`);
    assert.ok(r.bytesPerNodePerSec > 0);
    if (seed === SEEDS[0]) {
      assert.equal(
        strip({ ...runPublisherScenario("presence-churn", 100, seed) }),
        strip({ ...r }),
      );
    }
  }
  assert.throws(() => runPublisherScenario("presence", 10, 1, { trackers: 11 }), /trackers/);
});
