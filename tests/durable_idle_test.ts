// Issue 26, item 6: idle durable servers cost nothing. Each server's consumer
// watches its queue keys; on a Deno KV file the watch also polled every 100 ms
// (another process's writes are not reported by Deno KV's watch), so 1,000 idle
// servers in one process took about a core. Now a poll that sees nothing
// change doubles its period up to `pollIdleMaxMs` (5 s), and this process's own
// writes wake the watch at once, so a call to an idle server is as fast as ever.

import assert from "node:assert/strict";
import process from "node:process";
import { DenoKvStorage, type DurableBehaviour, DurableServer } from "../durable/mod.ts";

const Counter: DurableBehaviour<number, "get", { add: number }, never, number> = {
  init: () => ({ state: 0 }),
  handleCall: (_m, _f, n) => ({ reply: n, state: n }),
  handleCast: (m, n) => ({ state: n + m.add }),
};

const SERVERS = 300;

Deno.test(`durable: ${SERVERS} idle servers on one Deno KV file cost almost no CPU; a call to one is answered at once`, async () => {
  const dir = await Deno.makeTempDir();
  const storage = await DenoKvStorage.open(`${dir}/kv.sqlite`);
  const servers: DurableServer<number, "get", { add: number }, never, number>[] = [];
  try {
    for (let i = 0; i < SERVERS; i++) {
      servers.push(await DurableServer.start(Counter, 0, { storage, tenant: ["room", i] }));
    }
    // Past the doubling (100 ms ... 3.2 s), then 3 s of idling measured.
    await new Promise((r) => setTimeout(r, 3500));
    const c0 = process.cpuUsage(), t0 = performance.now();
    await new Promise((r) => setTimeout(r, 3000));
    const c = process.cpuUsage(c0), ms = performance.now() - t0;
    const cores = (c.user + c.system) / 1000 / ms;
    console.log(`${SERVERS} idle servers: ${cores.toFixed(3)} cores`);
    // Before: about 0.3 cores for 300 (a poll of four keys per server every 100 ms).
    assert.ok(cores < 0.1, `${SERVERS} idle servers used ${cores.toFixed(3)} cores`);
    // A cast then a call on servers idle for seconds: woken by their own writes.
    const took: number[] = [];
    for (let k = 0; k < 10; k++) {
      const s = servers[k * 30]!;
      const a = performance.now();
      await s.cast({ add: k });
      assert.equal(await s.call("get"), k);
      took.push(performance.now() - a);
    }
    took.sort((x, y) => x - y);
    console.log(`cast and call on an idle server: median ${took[5]!.toFixed(1)} ms`);
    assert.ok(took[5]! < 100, `median ${took[5]} ms (a poll period would show as seconds)`);
  } finally {
    for (const s of servers) await s.stop();
    await storage.close();
    await Deno.remove(dir, { recursive: true });
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
