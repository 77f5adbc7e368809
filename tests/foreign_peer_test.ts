// Joining an address that does not speak murmur names what answered: an HTTP
// server, a TLS endpoint (a plain node dialing a TLS port), or nothing murmur
// can read; never a bare "frame of 1213486160 bytes" (the bytes "HTTP").

import assert from "node:assert/strict";
import { HandshakeError } from "../mod.ts";
import { freePort, startNode } from "./_helpers.ts";
import { namedConnectError } from "../membership/_foreign.ts";

/** A TCP server on 127.0.0.1 that answers every connection with `reply` (after reading a little). */
function rawServer(reply: Uint8Array) {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns: Deno.Conn[] = [];
  const done = (async () => {
    for await (const c of listener) {
      conns.push(c);
      await c.read(new Uint8Array(64)).catch(() => null);
      await c.write(reply).catch(() => 0);
    }
  })();
  return {
    port: (listener.addr as Deno.NetAddr).port,
    async close() {
      listener.close();
      for (const c of conns) {
        try {
          c.close();
        } catch { /* closed by the peer */ }
      }
      await done.catch(() => {});
    },
  };
}

Deno.test("join: an HTTP server is named as such", async () => {
  const http = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    () => new Response("hello"),
  );
  const node = await startNode("fp-a");
  try {
    const port = http.addr.port;
    await assert.rejects(
      () => node.join(`127.0.0.1:${port}`),
      (e: Error) =>
        e instanceof HandshakeError && e.code === "protocol" &&
        e.message.includes(`127.0.0.1:${port} answered HTTP, not murmur`),
    );
  } finally {
    await node.close();
    await http.shutdown();
  }
});

Deno.test("join: a TLS endpoint dialed in plain is named as such", async () => {
  // A TLS alert record (handshake failure), what a TLS server answers a plain hello with.
  const srv = rawServer(new Uint8Array([0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x28]));
  const node = await startNode("fp-b");
  try {
    await assert.rejects(
      () => node.join(`127.0.0.1:${srv.port}`),
      (e: Error) =>
        e instanceof HandshakeError && e.code === "protocol" &&
        /answered TLS, not plain murmur \(is it a TLS port\? start this node with tls\)/.test(
          e.message,
        ),
    );
  } finally {
    await node.close();
    await srv.close();
  }
});

Deno.test("join: something else that cannot be murmur is named by its first bytes", async () => {
  const srv = rawServer(new TextEncoder().encode("SSH-2.0-OpenSSH_9.2\r\n"));
  const node = await startNode("fp-c");
  try {
    await assert.rejects(
      () => node.join(`127.0.0.1:${srv.port}`),
      (e: Error) =>
        e instanceof HandshakeError && e.code === "protocol" &&
        e.message.includes(`answered "SSH-", not murmur`),
    );
  } finally {
    await node.close();
    await srv.close();
  }
});

Deno.test("join: a TLS node dialing a plain port, a closed port: each named", async () => {
  const dir = new URL("./fixtures/", import.meta.url).pathname;
  const tls = {
    certFile: `${dir}node.pem`,
    keyFile: `${dir}node-key.pem`,
    caCerts: [await Deno.readTextFile(`${dir}ca.pem`)],
  };
  const plain = await startNode("fp-plain");
  const secure = await startNode("fp-tls", { tls });
  try {
    const port = plain.listenAddr.port;
    await assert.rejects(
      () => secure.join(`127.0.0.1:${port}`),
      (e: Error) =>
        e.message.includes(`127.0.0.1:${port} did not answer TLS (is it a plain port?)`),
    );
    // A port nothing listens on (below the ephemeral range: not handed to another test meanwhile).
    const closed = freePort();
    await assert.rejects(
      () => plain.join(`127.0.0.1:${closed}`),
      (e: Error) =>
        e instanceof Deno.errors.ConnectionRefused && e.message.startsWith(`127.0.0.1:${closed}: `),
    );
  } finally {
    await secure.close();
    await plain.close();
  }
});

Deno.test("connect: a failed DNS lookup names the host (the tests may not dial other hosts: the error as Deno gives it)", () => {
  const e = new Error("failed to lookup address information: Name or service not known");
  const named = namedConnectError(e, { hostname: "db-1.internal", port: 7000 }) as Error;
  assert.equal(
    named.message,
    'cannot resolve "db-1.internal" (DNS): failed to lookup address information: Name or service not known',
  );
  assert.equal(named.cause, e);
  const other = new Error("something else");
  assert.equal(namedConnectError(other, { hostname: "x", port: 1 }), other);
});
