// Property: after random joins, leaves, crashes and partitions, and then healing,
// every live node's process-group view is the union of the live nodes' local data.

import assert from "node:assert/strict";
import fc from "fast-check";
import { MemoryNetwork } from "../testing.ts";
import { Node, ProcessGroups, seededRandom } from "../mod.ts";
import { SimulatedClock } from "../protocol.ts";

const SEED = Number(Deno.env.get("FC_SEED") ?? Date.now() % 2 ** 31);
const N = 4;
const GROUPS = ["a", "b", "c"];
const MEMBERS = ["m1", "m2", "m3"];

type Op =
  | { kind: "join"; node: number; group: string; member: string }
  | { kind: "leave"; node: number; group: string; member: string }
  | { kind: "unregister"; node: number; member: string }
  | { kind: "crash"; node: number }
  | { kind: "partition"; node: number }
  | { kind: "heal" }
  | { kind: "wait"; ms: number };

const op: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 5,
    arbitrary: fc.record({
      kind: fc.constant("join" as const),
      node: fc.nat(N - 1),
      group: fc.constantFrom(...GROUPS),
      member: fc.constantFrom(...MEMBERS),
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant("leave" as const),
      node: fc.nat(N - 1),
      group: fc.constantFrom(...GROUPS),
      member: fc.constantFrom(...MEMBERS),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant("unregister" as const),
      node: fc.nat(N - 1),
      member: fc.constantFrom(...MEMBERS),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("crash" as const), node: fc.nat(N - 1) }) },
  {
    weight: 1,
    arbitrary: fc.record({ kind: fc.constant("partition" as const), node: fc.nat(N - 1) }),
  },
  { weight: 1, arbitrary: fc.constant({ kind: "heal" as const }) },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant("wait" as const),
      ms: fc.integer({ min: 10, max: 3000 }),
    }),
  },
);

async function runScenario(ops: Op[], seed: number): Promise<void> {
  const clock = new SimulatedClock(1_000_000);
  const net = new MemoryNetwork({ clock, seed, latencyMs: [1, 5] });
  const random = seededRandom(seed);
  const nodes: (Node | undefined)[] = [];
  const pgs: (ProcessGroups | undefined)[] = [];
  const boot = async (i: number) => {
    const node = await Node.start({
      name: `n${i}`,
      cookie: "pbt",
      transport: net.transport(`h${i}`),
      listen: { hostname: `h${i}`, port: 1 },
      clock,
      random,
      logger: () => {},
      pingIntervalMs: 300,
      failureTimeoutMs: 1500,
      reconnectBackoffMaxMs: 1000,
    });
    nodes[i] = node;
    pgs[i] = await ProcessGroups.start(node, "pbt", { clock, logger: () => {} });
  };
  for (let i = 0; i < N; i++) await boot(i);
  const joins = nodes.slice(1).map((x) => x!.join(nodes[0]!.spec).catch(() => {}));
  const advance = async (ms: number) => {
    for (let t = 0; t < ms; t += 50) await clock.advance(50);
  };
  await advance(3000);
  await Promise.all(joins);
  const partitions: number[] = [];
  try {
    for (const o of ops) {
      const node = "node" in o ? nodes[o.node]! : undefined;
      const pg = "node" in o ? pgs[o.node]! : undefined;
      switch (o.kind) {
        case "join":
          if (!node!.registered(o.member)) node!.register(o.member, () => 0);
          await pg!.join(o.group, o.member);
          break;
        case "leave":
          await pg!.leave(o.group, o.member);
          break;
        case "unregister":
          node!.unregister(o.member);
          break;
        case "crash": {
          // A crash loses the node's local data; it comes back as a new incarnation.
          await pg!.publisher.close().catch(() => {});
          await node!.close();
          await clock.advance(1);
          await boot(o.node);
          const j = nodes[o.node]!.join(nodes[(o.node + 1) % N]!.spec).catch(() => {});
          await advance(500);
          await j;
          break;
        }
        case "partition":
          partitions.push(
            net.partition(
              [`h${o.node}`],
              nodes.map((_, i) => `h${i}`).filter((h) => h !== `h${o.node}`),
            ),
          );
          break;
        case "heal":
          net.heal();
          break;
        case "wait":
          await advance(o.ms);
          break;
      }
      await clock.advance(5);
    }
    net.heal();
    // Settle: everyone reconnects, rediscovers and resynchronizes.
    await advance(15_000);
    const expected: Record<string, string[]> = {};
    for (const [i, pg] of pgs.entries()) {
      for (const [g, ids] of pg!.publisher.localData) {
        for (const id of ids) (expected[g] ??= []).push(`n${i}/${id}`);
      }
    }
    for (const g of Object.keys(expected)) expected[g]!.sort();
    for (const [i, pg] of pgs.entries()) {
      const got: Record<string, string[]> = {};
      for (const g of pg!.whichGroups()) {
        got[g] = pg!.getMembers(g).map((m) => `${m.node}/${m.id}`).sort();
      }
      assert.deepEqual(got, expected, `view of n${i} after ${JSON.stringify(ops)}`);
    }
  } finally {
    for (const pg of pgs) await pg?.close();
    for (const x of nodes) await x?.close();
  }
}

Deno.test(`process groups converge to the union of live local data (FC_SEED=${SEED})`, async () => {
  console.log(`FC_SEED=${SEED}`);
  await fc.assert(
    fc.asyncProperty(
      fc.array(op, { minLength: 1, maxLength: 25 }),
      fc.integer({ min: 1, max: 2 ** 30 }),
      runScenario,
    ),
    { seed: SEED, numRuns: 25 },
  );
});
