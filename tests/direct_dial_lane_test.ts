// Issue 29, fault 4: peer-chosen addresses starved a HyParView node's own
// connects. Made-up identities, each advertising an address that accepts TCP
// and never answers, each sent one message to an endpoint that answers with
// `send(ctx.from, ...)`: every answer dialed the attacker's address (a direct
// connection) and the node's own join waited behind those dials until it
// failed. Now dials on a peer's behalf have their own bounded lane (a quarter
// of `connectsPendingMax` at once, 64 waiting, past that the send is dropped
// and counted), and membership dials never wait behind them.

import assert from "node:assert/strict";
import { clientHandshake, encodeValue, Tag } from "../protocol.ts";
import { TcpTransport } from "../membership/mod.ts";
import type { FrameConnection, Node } from "../membership/mod.ts";
import { startNode, tarpit } from "./_helpers.ts";

const IDENTITIES = 200;

Deno.test("hyparview: dials on peers' behalf never hold up the node's own join", async () => {
  // A tarpit: accepts TCP and never answers (the made-up nodes' address).
  const pit = tarpit();
  const membership = { strategy: "hyparview" as const };
  const nodes: Node[] = [];
  const conns: FrameConnection[] = [];
  try {
    const t = await startNode("target", { membership, connectTimeoutMs: 3000 });
    const other = await startNode("other", { membership });
    nodes.push(t, other);
    t.register("echo-back", (msg, ctx) => void t.send(ctx.from, "reply", msg));
    const port = pit.port;
    for (let i = 0; i < IDENTITIES; i++) {
      const conn = await new TcpTransport().connect(t.listenAddr);
      conns.push(conn);
      await clientHandshake(
        conn,
        {
          cluster: "murmur",
          cookie: "test-cookie",
          spec: {
            name: `made-up-${i}`,
            incarnation: 1,
            listenAddrs: [{ hostname: "127.0.0.1", port }],
            channels: {},
          },
          nonce: () => crypto.getRandomValues(new Uint8Array(16)),
          handshakeFrameBytesMax: 16384,
        },
        "default",
        0,
      );
      await conn.write([encodeValue([Tag.Msg, "echo-back", i]).slice()]);
    }
    await new Promise((r) => setTimeout(r, 300)); // the answers' dials are under way
    const t0 = performance.now();
    await t.join(other.spec, { timeoutMs: 5000 });
    const ms = performance.now() - t0;
    console.log(
      `  joined in ${Math.round(ms)} ms with ${pit.dials()} dials to the tarpit, ` +
        `${t.stats().sendDrops} answers dropped`,
    );
    assert.ok(ms < 1000, `the join took ${Math.round(ms)} ms`);
    assert.ok(pit.dials() <= 16 + 64, `${pit.dials()} dials on peers' behalf`);
  } finally {
    for (const c of conns) c.close();
    await Promise.all(nodes.map((n) => n.close()));
    await pit.close();
  }
});
