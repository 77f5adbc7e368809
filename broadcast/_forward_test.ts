import assert from "node:assert/strict";
import fc from "fast-check";
import { decodeValue, encodeValue } from "../base/codec.ts";
import { Tag } from "../membership/wire.ts";
import { bumpRound } from "./_forward.ts";
import { PT } from "./wire.ts";
import { PLUMTREE_ENDPOINT } from "./plumtree.ts";

const SEED = Number(Deno.env.get("FC_SEED") ?? Date.now() % 2 ** 31);

/** The frame of a push, as a node encodes it. */
const frameOf = (handler: string, id: unknown, payload: unknown, root: string, round: number) =>
  encodeValue([Tag.Msg, PLUMTREE_ENDPOINT, [PT.Broadcast, handler, id, payload, root, round]])
    .slice();

/** Rounds whose next one takes another byte, and the largest encodable in place. */
const WIDER = new Set([23, 255, 65_535, 2 ** 32 - 1]);

Deno.test(`plumtree forward: a push's frame, round rewritten in place, decodes to the push one round on (FC_SEED=${SEED})`, () => {
  console.log(`FC_SEED=${SEED}`);
  const round = fc.oneof(
    fc.integer({ min: 0, max: 300 }),
    fc.integer({ min: 0, max: 2 ** 32 + 5 }),
    fc.constantFrom(22, 23, 24, 254, 255, 256, 65_534, 65_535, 65_536, 2 ** 32 - 2, 2 ** 32 - 1),
  );
  const name = fc.string({ minLength: 1, maxLength: 255 });
  const ascii = fc.string({ unit: "binary-ascii", minLength: 1, maxLength: 255 });
  fc.assert(
    fc.property(
      name,
      fc.oneof(fc.integer(), fc.string(), fc.array(fc.integer(), { maxLength: 3 })),
      fc.oneof(fc.jsonValue(), fc.uint8Array({ maxLength: 64 })),
      fc.oneof(ascii, name),
      round,
      (handler, id, payload, root, r) => {
        const frame = frameOf(handler, id, payload, root, r);
        const before = frame.slice();
        const ok = bumpRound(frame, root, r);
        const isAscii = [...root].every((c) => c.charCodeAt(0) < 0x80);
        const inPlace = !WIDER.has(r) && r < 2 ** 32 && isAscii;
        assert.equal(ok, inPlace, `round ${r}, root ${JSON.stringify(root)}`);
        if (!ok) {
          assert.deepEqual([...frame], [...before], "a refused frame is left as it was");
          return;
        }
        assert.deepEqual(
          decodeValue(frame),
          decodeValue(frameOf(handler, id, payload, root, r + 1)),
        );
      },
    ),
    { seed: SEED, numRuns: 2000 },
  );
});

Deno.test("plumtree forward: a round or root written other than the shortest way is left to a new encoding", () => {
  const root = "n01";
  // The frame up to (and without) the round, as cbor-x writes it.
  const head = frameOf("h", 1, "x", root, 0).slice(0, -1);
  const withRound = (...bytes: number[]) => new Uint8Array([...head, ...bytes]);
  const cases: [string, Uint8Array, number][] = [
    ["5 in two bytes", withRound(0x18, 5), 5],
    ["5 in three bytes", withRound(0x19, 0, 5), 5],
    ["5 in five bytes", withRound(0x1a, 0, 0, 0, 5), 5],
    ["300 in five bytes", withRound(0x1a, 0, 0, 1, 44), 300],
    ["0 as a half float", withRound(0xf9, 0, 0), 0],
    ["2 as a half float", withRound(0xf9, 0x40, 0), 2],
    ["0 as a double", withRound(0xfb, 0, 0, 0, 0, 0, 0, 0, 0), 0],
  ];
  for (const [what, frame, r] of cases) {
    const m = decodeValue(frame) as unknown[];
    assert.equal((m[2] as unknown[])[5], r, what); // the frame is valid and says round r
    const before = frame.slice();
    assert.equal(bumpRound(frame, root, r), false, what);
    assert.deepEqual([...frame], [...before], what);
  }
  // A root written with a two-byte length though it is short.
  const long = frameOf("h", 1, "x", root, 4);
  const rootAt = long.length - 1 - 4; // the root's one-byte head
  const odd = new Uint8Array([...long.slice(0, rootAt), 0x78, 3, ...long.slice(rootAt + 1)]);
  assert.equal(((decodeValue(odd) as unknown[])[2] as unknown[])[4], root);
  assert.equal(bumpRound(odd, root, 4), false);
  // And a root that is not the one the frame ends with.
  assert.equal(bumpRound(frameOf("h", 1, "x", root, 4), "n02", 4), false);
});
