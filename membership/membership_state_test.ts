import assert from "node:assert/strict";
import fc from "fast-check";
import { initialState, members, type MembershipState, step, validateEntries } from "../protocol.ts";
import type { MemberEntry, MemberStatus, NodeSpec } from "./mod.ts";

const SEED = Number(Deno.env.get("FC_SEED") ?? Date.now() % 2 ** 31);
const spec = (name: string, incarnation: number, port = 7000): NodeSpec => ({
  name,
  incarnation,
  listenAddrs: [{ hostname: "127.0.0.1", port }],
  channels: {},
});
const empty = (self: string): MembershipState => initialState(spec(self, 0));

Deno.test("a restart replaces the stale spec; a departure wins at equal incarnation", () => {
  let s = empty("a");
  s = step(s, { type: "seen", spec: spec("b", 1, 7001) }).state;
  const r = step(s, { type: "seen", spec: spec("b", 2, 7009) });
  assert.equal(r.changes[0]?.kind, "replaced");
  assert.equal(r.state.entries.get("b")?.spec.listenAddrs[0]?.port, 7009);
  const left = step(r.state, {
    type: "gossip",
    entries: [{ spec: spec("b", 2, 7009), status: "left" }],
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
    entries: [1, 2, 3, 4].map((i) => ({ spec: spec(`n${i}`, 1), status: "alive" as const })),
  }, 3);
  s = r.state;
  assert.equal(s.alive, 3);
  assert.equal(r.rejected, 2);
  // Tombstones do not count against membersMax: removing frees room for a new member.
  s = step(s, { type: "remove", names: ["n1"] }, { membersMax: 3, now: 5 }).state;
  assert.deepEqual(members(s), ["a", "n2"]);
  s = step(s, { type: "seen", spec: spec("n9", 1) }, 3).state;
  assert.deepEqual(members(s), ["a", "n2", "n9"]);
});

Deno.test(`merge is order-insensitive, idempotent, and converges (FC_SEED=${SEED})`, () => {
  console.log(`FC_SEED=${SEED}`);
  const entry = fc.record({
    name: fc.constantFrom("b", "c", "d", "e"),
    incarnation: fc.integer({ min: 0, max: 5 }),
    port: fc.integer({ min: 1, max: 3 }),
    status: fc.constantFrom<MemberStatus>("alive", "left", "removed"),
  }).map((e): MemberEntry => ({
    spec: spec(e.name, e.incarnation, 7000 + e.port),
    status: e.status,
  }));
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
          ) => [n, e.spec.incarnation, e.status, e.spec.listenAddrs[0]!.port]),
        );
      assert.equal(key(one), key(two));
      const again = step(one, { type: "gossip", entries: [...one.entries.values()] });
      assert.equal(again.state, one, "merging a view into itself changes nothing");
    }),
    { seed: SEED, numRuns: 300 },
  );
});

Deno.test("a removed member stays out at its incarnation; tombstones expire and are bounded", () => {
  let s = empty("a");
  s = step(s, { type: "seen", spec: spec("b", 3) }).state;
  const r = step(s, { type: "remove", names: ["b", "a", "zz"] }, { now: 100 });
  assert.deepEqual(r.changes.map((c) => [c.name, c.kind]), [["b", "removed"]]);
  s = r.state;
  assert.deepEqual(members(s), ["a"]);
  // Stale gossip of the same incarnation cannot bring it back; a restart can.
  assert.equal(
    step(s, { type: "gossip", entries: [{ spec: spec("b", 3), status: "alive" }] }).state,
    s,
  );
  assert.deepEqual(members(step(s, { type: "seen", spec: spec("b", 4) }).state), ["a", "b"]);
  // A departure outranks a removal at the same incarnation.
  const left = step(s, { type: "gossip", entries: [{ spec: spec("b", 3), status: "left" }] });
  assert.equal(left.state.entries.get("b")?.status, "left");
  // Expiry forgets tombstones stamped before the cut.
  assert.equal(step(s, { type: "expire", before: 100 }).state.entries.has("b"), true);
  assert.equal(step(s, { type: "expire", before: 101 }).state.entries.has("b"), false);
  // At most tombstonesMax tombstones: the oldest go first.
  let t = empty("a");
  for (let i = 0; i < 5; i++) {
    t = step(t, {
      type: "gossip",
      entries: [{ spec: spec(`x${i}`, 1), status: "removed" }],
    }, { tombstonesMax: 3, now: i }).state;
  }
  assert.deepEqual([...t.tombstonedAt.keys()], ["x2", "x3", "x4"]);
});

Deno.test("an entry about this node is reported, never adopted", () => {
  const s = step(empty("a"), { type: "seen", spec: spec("b", 1) }).state;
  const r = step(s, { type: "gossip", entries: [{ spec: spec("a", 0), status: "removed" }] });
  assert.equal(r.self?.status, "removed");
  assert.equal(r.state.entries.get("a")?.status, "alive");
});

Deno.test("invalid gossip entries are dropped one by one and counted", () => {
  const r = validateEntries([[spec("b", 1), 0], [{ name: "" }, 0], [spec("c", 1), 7], "x"]);
  assert.deepEqual(r.entries.map((e) => e.spec.name), ["b"]);
  assert.equal(r.invalid, 3);
});
