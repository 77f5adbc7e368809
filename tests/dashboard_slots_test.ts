// Event-stream slots are not held by clients that never read: every stream
// ends after `streamMaxMs` (a browser's EventSource reconnects at once), so
// 16 silent clients free their slots within that bound.

import assert from "node:assert/strict";
import { serveDashboard } from "../dashboard/mod.ts";
import { startNode } from "./_helpers.ts";

Deno.test("dashboard: event-stream slots held by clients that never read are freed within streamMaxMs", async () => {
  await using node = await startNode("slots-a");
  await using dash = await serveDashboard({ node }, { clientsMax: 4, streamMaxMs: 1500 });
  const port = Number(new URL(dash.url).port);
  const silent: Deno.Conn[] = [];
  try {
    for (let i = 0; i < 4; i++) {
      const c = await Deno.connect({ hostname: "127.0.0.1", port });
      await c.write(new TextEncoder().encode("GET /events HTTP/1.1\r\nhost: x\r\n\r\n"));
      silent.push(c); // never read
    }
    // Every slot taken: the next is refused.
    let refused: Response | undefined;
    for (let i = 0; i < 50 && refused === undefined; i++) {
      const r = await fetch(new URL("events", dash.url));
      if (r.status === 503) refused = r;
      else await r.body?.cancel();
      if (refused === undefined) await new Promise((r) => setTimeout(r, 20));
    }
    assert.ok(refused, "the slots are full");
    await refused.body?.cancel();
    const t0 = Date.now();
    let ok: Response | undefined;
    for (let i = 0; i < 100 && Date.now() - t0 < 5000; i++) {
      const r = await fetch(new URL("events", dash.url));
      if (r.status === 200) ok = r;
      else {
        await r.body?.cancel();
        await new Promise((r) => setTimeout(r, 50));
      }
      if (ok) break;
    }
    console.log(`  a slot was free again after ${Date.now() - t0} ms (streamMaxMs 1500)`);
    assert.ok(ok, "a slot is free again within the bound");
    await ok.body?.cancel();
    await assert.rejects(() => serveDashboard({ node }, { streamMaxMs: 0 }), /streamMaxMs/);
  } finally {
    for (const c of silent) c.close();
  }
});
