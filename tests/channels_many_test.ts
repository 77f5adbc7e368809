// Two nodes with 33 connections per peer (channels of parallelism 16 and 16,
// and the default): the join succeeds and every connection comes up. Before,
// the per-address handshake bound (32) closed the node's own handshakes as
// "stalled", silently, and the join failed after its timeout every time.

import assert from "node:assert/strict";
import { eventually, startNode } from "./_helpers.ts";

Deno.test("channels: 33 connections per peer all connect; no handshake of the peer's is evicted", async () => {
  const channels = { bulk: { parallelism: 16 }, state: { parallelism: 16 } };
  await using a = await startNode("many-a", { channels });
  await using b = await startNode("many-b", { channels });
  const t0 = Date.now();
  await b.join(a.spec, { timeoutMs: 10_000 });
  const want = { default: 1, bulk: 16, state: 16 };
  await eventually(
    () =>
      JSON.stringify(b.memberInfo().find((m) => m.name === "many-a")?.connections) ===
        JSON.stringify(want),
    "33 connections up",
    10_000,
  );
  console.log(`  joined and all 33 connections up in ${Date.now() - t0} ms`);
  assert.equal(a.stats().handshakesEvicted, 0);
  assert.equal(a.stats().handshakesRefused, 0);
});
