import assert from "node:assert/strict";
import fc from "fast-check";
import { type MemberEntry, members, type MembershipState, type NodeSpec, step } from "./mod.ts";

const SEED = Number(Deno.env.get("FC_SEED") ?? Date.now() % 2 ** 31);
const spec = (name: string, incarnation: number, port = 7000): NodeSpec => ({
  name,
  incarnation,
  listenAddrs: [{ hostname: "127.0.0.1", port }],
  channels: {},
});
const empty = (self: string): MembershipState => ({
  self,
  entries: new Map([[self, { spec: spec(self, 0), left: false }]]),
});

Deno.test("a restart replaces the stale spec; a departure wins at equal incarnation", () => {
  let s = empty("a");
  s = step(s, { type: "seen", spec: spec("b", 1, 7001) }).state;
  const r = step(s, { type: "seen", spec: spec("b", 2, 7009) });
  assert.equal(r.changes[0]?.kind, "replaced");
  assert.equal(r.state.entries.get("b")?.spec.listenAddrs[0]?.port, 7009);
  const left = step(r.state, {
    type: "gossip",
    entries: [{ spec: spec("b", 2, 7009), left: true }],
  });
  assert.equal(left.changes[0]?.kind, "left");
  assert.deepEqual(members(left.state), ["a"]);
  // Stale news of the same incarnation cannot bring it back; a new incarnation can.
  assert.equal(step(left.state, { type: "seen", spec: spec("b", 2) }).state, left.state);
  assert.deepEqual(members(step(left.state, { type: "seen", spec: spec("b", 3) }).state), [
    "a",
    "b",
  ]);
});

Deno.test("membersMax bounds the view", () => {
  let s = empty("a");
  const r = step(s, {
    type: "gossip",
    entries: [1, 2, 3, 4].map((i) => ({ spec: spec(`n${i}`, 1), left: false })),
  }, 3);
  s = r.state;
  assert.equal(s.entries.size, 3);
  assert.equal(r.rejected, 2);
});

Deno.test(`merge is order-insensitive, idempotent, and converges (FC_SEED=${SEED})`, () => {
  console.log(`FC_SEED=${SEED}`);
  const entry = fc.record({
    name: fc.constantFrom("b", "c", "d", "e"),
    incarnation: fc.integer({ min: 0, max: 5 }),
    port: fc.integer({ min: 1, max: 3 }),
    left: fc.boolean(),
  }).map((e): MemberEntry => ({ spec: spec(e.name, e.incarnation, 7000 + e.port), left: e.left }));
  fc.assert(
    fc.property(fc.array(entry, { maxLength: 30 }), fc.integer(), (entries, shuffleSeed) => {
      const apply = (list: MemberEntry[]) => {
        let s = empty("a");
        for (const e of list) s = step(s, { type: "gossip", entries: [e] }).state;
        return s;
      };
      const shuffled = [...entries].sort((x, y) =>
        ((x.spec.incarnation * 31 + shuffleSeed) % 7) -
        ((y.spec.incarnation * 31 + shuffleSeed) % 7)
      );
      const one = apply(entries), two = apply(shuffled);
      const key = (s: MembershipState) =>
        JSON.stringify(
          [...s.entries].sort(([x], [y]) => (x < y ? -1 : 1)).map((
            [n, e],
          ) => [n, e.spec.incarnation, e.left]),
        );
      assert.equal(key(one), key(two));
      const again = step(one, { type: "gossip", entries: [...one.entries.values()] });
      assert.equal(again.state, one, "merging a view into itself changes nothing");
    }),
    { seed: SEED, numRuns: 300 },
  );
});
