// Slowloris from the joiner's own address, past the hello: connections that
// send a well-formed hello and then never answer the challenge (no cookie
// needed for that) filled the per-address handshake slots until the
// handshake timeout, and a real node from the same address could not join.

import assert from "node:assert/strict";
import { encodeValue, PROTOCOL_VERSION } from "../protocol.ts";
import { converged, startNode } from "./_helpers.ts";

function frame(value: unknown): Uint8Array {
  const body = encodeValue(value);
  const out = new Uint8Array(4 + body.length);
  new DataView(out.buffer).setUint32(0, body.length);
  out.set(body, 4);
  return out;
}

Deno.test("slowloris past the hello: 100 hellos that never answer the challenge do not block a real node's join from the same address", async () => {
  await using a = await startNode("slow-a", { handshakeTimeoutMs: 20_000 });
  const addr = a.spec.listenAddrs[0]!;
  const held: Deno.Conn[] = [];
  try {
    for (let i = 0; i < 100; i++) {
      const c = await Deno.connect(addr);
      held.push(c);
      await c.write(frame({
        t: "hello",
        v: PROTOCOL_VERSION,
        cluster: "murmur",
        spec: {
          name: `fake-${i}`,
          incarnation: 1,
          listenAddrs: [{ hostname: "127.0.0.1", port: 1 }],
          channels: { default: {} },
        },
        channel: "default",
        index: 0,
        nonce: new Uint8Array(16),
        instance: new Uint8Array(16),
      }));
    }
    await new Promise((r) => setTimeout(r, 1500)); // the hellos are read; the challenges go unanswered
    await using n = await startNode("slow-n");
    const t0 = performance.now();
    await n.join(a.spec, { timeoutMs: 10_000 });
    const ms = performance.now() - t0;
    console.log(`  joined in ${ms.toFixed(0)} ms with 100 stalled handshakes open`);
    assert.ok(ms < 2000, `joined in ${ms.toFixed(0)} ms`);
    await converged([a, n], ["slow-a", "slow-n"]);
  } finally {
    for (const c of held) {
      try {
        c.close();
      } catch { /* closed by the node */ }
    }
  }
});
