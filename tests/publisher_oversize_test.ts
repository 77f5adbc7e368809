// Data that cannot cross the wire is refused all or nothing (issue: 2 MB of
// presence metadata was rejected yet kept in the local data, and every later
// change of that node stopped replicating): the error names the limit, the
// key is not kept, and later changes replicate. On both engines.

import assert from "node:assert/strict";
import { Presence } from "../mod.ts";
import { eventually, startNode } from "./_helpers.ts";

for (const strategy of ["full-mesh", "hyparview"] as const) {
  Deno.test(`publishers (${strategy}): data over the frame limit is refused, not kept, and replication goes on`, async () => {
    const membership = { strategy } as const;
    const a = await startNode(`ov-a-${strategy}`, { membership });
    const b = await startNode(`ov-b-${strategy}`, { membership });
    await b.join(a.spec);
    const pa = await Presence.start(a, "room");
    const pb = await Presence.start(b, "room");
    try {
      await pa.track("t", "small", { n: 1 });
      await eventually(() => pb.list("t")["small"] !== undefined, "small replicated", 5000);
      const big = { blob: "x".repeat(2 * 1024 * 1024) };
      await assert.rejects(
        () => pa.track("t", "big", big),
        (e: Error) => /frameBytesMax/.test(e.message) && /1048576/.test(e.message),
      );
      assert.equal(pa.list("t")["big"], undefined, "not kept locally");
      assert.deepEqual(Object.keys(pa.list("t")).sort(), ["small"]);
      await pa.track("t", "after", { n: 2 });
      await eventually(
        () => pb.list("t")["after"] !== undefined,
        "a later change replicated",
        5000,
      );
      assert.equal(pb.list("t")["big"], undefined);
    } finally {
      await pa.close();
      await pb.close();
      await a.close();
      await b.close();
    }
  });
}
