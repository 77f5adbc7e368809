// Issue 26, item 6: idle durable servers cost nothing. Each server's consumer
// watches its queue keys; on a Deno KV file the watch also polled every 100 ms
// (another process's writes are not reported by Deno KV's watch), so 1,000 idle
// servers in one process took about a core. Now a poll that sees nothing
// change doubles its period up to `pollIdleMaxMs` (5 s), and this process's own
// writes wake the watch at once, so a call to an idle server is as fast as ever.

import assert from "node:assert/strict";
import { DenoKvStorage } from "../durable/mod.ts";
import { JsonProcess } from "./_helpers.ts";

const SERVERS = 300;

Deno.test(`durable: ${SERVERS} idle servers on one Deno KV file cost almost no CPU; a call to one is answered at once`, async () => {
  // In a process of their own: the CPU figure is theirs alone.
  const child = new JsonProcess(
    new URL("./_idle_servers.ts", import.meta.url),
    ["--unstable-kv", "--allow-read", "--allow-write", "--allow-env"],
    [String(SERVERS)],
  );
  try {
    const r = await child.waitEvent("result", 60_000);
    const cores = r.cores as number, median = r.medianMs as number;
    console.log(`${SERVERS} idle servers: ${cores.toFixed(3)} cores`);
    // Before: about 0.3 cores for 300 (a poll of four keys per server every 100 ms).
    assert.ok(cores < 0.1, `${SERVERS} idle servers used ${cores.toFixed(3)} cores`);
    console.log(`cast and call on an idle server: median ${median.toFixed(1)} ms`);
    assert.ok(median < 100, `median ${median} ms (a poll period would show as seconds)`);
    assert.equal((await child.child.status).code, 0);
  } finally {
    await child.kill();
  }
});

Deno.test("durable: another handle's write to an idle watched key is still seen, within pollIdleMaxMs", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/kv.sqlite`;
  const a = await DenoKvStorage.open(path, { pollIntervalMs: 20, pollIdleMaxMs: 200 });
  const b = await DenoKvStorage.open(path, { pollIntervalMs: 20 });
  const stop = new AbortController();
  try {
    const seen: (bigint | Uint8Array | null)[] = [];
    const watching = (async () => {
      for await (const [e] of a.watch([["k"]], stop.signal)) {
        seen.push(e!.value);
        if (seen.length === 2) return;
      }
    })();
    await new Promise((r) => setTimeout(r, 600)); // idle: the poll period is at its bound
    const t0 = performance.now();
    await b.commit([], [{ type: "set", key: ["k"], value: new Uint8Array([7]) }]);
    await watching;
    const ms = performance.now() - t0;
    assert.deepEqual(seen, [null, new Uint8Array([7])]);
    assert.ok(ms < 1000, `seen after ${ms.toFixed(0)} ms`);
    await assert.rejects(DenoKvStorage.open(path, { pollIdleMaxMs: 0 }), /pollIdleMaxMs/);
  } finally {
    stop.abort();
    await a.close();
    await b.close();
    await Deno.remove(dir, { recursive: true });
  }
});
