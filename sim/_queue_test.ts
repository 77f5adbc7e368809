import assert from "node:assert/strict";
import fc from "fast-check";
import { EventQueue } from "./_queue.ts";

Deno.test("simulator queue: events run by time, equal times in the order they were scheduled", () => {
  const seed = Date.now() % 1_000_000;
  console.log(`seed ${seed}`);
  fc.assert(
    fc.property(
      // Pushes (a time from a small set, so that ties are common) and pops, interleaved.
      fc.array(fc.oneof(fc.integer({ min: 0, max: 20 }), fc.constant(-1)), { maxLength: 3000 }),
      (ops) => {
        const q = new EventQueue();
        const model: { at: number; seq: number }[] = [];
        let seq = 0;
        for (const op of ops) {
          if (op >= 0) {
            const me = { at: op / 4, seq: seq++ };
            model.push(me);
            q.push(me.at, () => me);
          } else {
            model.sort((a, b) => a.at - b.at || a.seq - b.seq);
            const want = model.shift();
            assert.equal(q.peek(), want?.at ?? Infinity);
            const run = q.pop();
            assert.equal(run?.(), want);
          }
          assert.equal(q.size, model.length);
        }
        model.sort((a, b) => a.at - b.at || a.seq - b.seq);
        for (const want of model) assert.equal(q.pop()?.(), want);
        assert.equal(q.pop(), undefined);
        assert.equal(q.peek(), Infinity);
      },
    ),
    { seed, numRuns: 200 },
  );
});
