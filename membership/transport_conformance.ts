/**
 * The transport conformance suite. Every {@linkcode Transport} murmur ships
 * passes it; call it from your own test file to check yours.
 *
 * @module
 */

import assert from "node:assert/strict";
import { FrameTooLargeError } from "./errors.ts";
import type { Address, FrameConnection, FrameListener, Transport } from "./transport.ts";

/** What the suite needs from a transport under test. */
export interface TransportFixture {
  /** A transport for a (possibly new) host. */
  transport(): Transport | Promise<Transport>;
  /** The address to listen on, port 0 for any free port. */
  listenAddr(transport: Transport): Address;
  /** Cleans up after each test. */
  teardown?(): void | Promise<void>;
}

/**
 * Registers the conformance tests (with `Deno.test`) for one transport.
 *
 * @example Run the suite against the memory transport
 * ```ts ignore
 * import { MemoryNetwork, testTransport } from "@murmur/murmur/testing";
 * let n = 0;
 * const net = new MemoryNetwork();
 * testTransport("memory", {
 *   transport: () => net.transport(`h${++n}`),
 *   listenAddr: (t) => ({ hostname: (t as ReturnType<typeof net.transport>).hostname, port: 0 }),
 * });
 * ```
 */
export function testTransport(name: string, fixture: TransportFixture): void {
  async function pair(): Promise<{
    listener: FrameListener;
    client: FrameConnection;
    server: FrameConnection;
    done: () => Promise<void>;
  }> {
    const a = await fixture.transport();
    const b = await fixture.transport();
    const listener = await b.listen(fixture.listenAddr(b));
    const client = await a.connect(listener.addr);
    const server = await listener.accept();
    assert.ok(server !== null, "accept returned a connection");
    return {
      listener,
      client,
      server,
      done: async () => {
        client.close();
        server.close();
        listener.close();
        await fixture.teardown?.();
      },
    };
  }

  const frame = (n: number, size = 8) => {
    const f = new Uint8Array(size);
    new DataView(f.buffer).setUint32(0, n);
    return f;
  };

  Deno.test(`${name} transport: frames arrive whole and in order, both ways`, async () => {
    const p = await pair();
    try {
      const sizes = [0, 1, 4, 5, 100, 65535, 65536, 200_000];
      const frames = sizes.map((s, i) => {
        const f = new Uint8Array(s);
        for (let j = 0; j < s; j++) f[j] = (i * 31 + j) & 0xff;
        return f;
      });
      await p.client.write(frames);
      for (const f of frames) assert.deepEqual(await p.server.read(), f);
      for (let i = 0; i < 1000; i += 10) {
        await p.server.write(Array.from({ length: 10 }, (_, j) => frame(i + j)));
      }
      for (let i = 0; i < 1000; i++) {
        const got = await p.client.read();
        assert.ok(got !== null);
        assert.equal(new DataView(got.buffer, got.byteOffset).getUint32(0), i);
      }
    } finally {
      await p.done();
    }
  });

  Deno.test(`${name} transport: a frame read is the reader's own, apart from the writer's buffers and later reads`, async () => {
    const p = await pair();
    try {
      const sent = [frame(1, 64), frame(2, 64)];
      const copies = sent.map((f) => f.slice());
      await p.client.write(sent);
      for (const f of sent) f.fill(0xee); // the writer reuses its buffers
      const first = await p.server.read();
      assert.deepEqual(first, copies[0]);
      first!.fill(0x55); // the reader changes what it got
      await p.client.write([frame(3, 64)]);
      assert.deepEqual(await p.server.read(), copies[1]);
      assert.deepEqual(await p.server.read(), frame(3, 64));
      assert.ok(first!.every((b) => b === 0x55), "a later read overwrote an earlier frame");
    } finally {
      await p.done();
    }
  });

  Deno.test(`${name} transport: frames of mixed sizes split across reads keep their bytes, all kept at once`, async () => {
    const p = await pair();
    try {
      const count = 3000;
      // 0 to 5,002 bytes, no two neighbours alike, and now and then one larger than a read buffer.
      const size = (i: number) => i % 400 === 1 ? 100_000 + i : (i * 7919) % 5003;
      const byte = (i: number, j: number) => (i * 13 + j * 7) & 0xff;
      const writer = (async () => {
        for (let i = 0; i < count; i += 37) {
          const batch: Uint8Array[] = [];
          for (let k = i; k < Math.min(count, i + 37); k++) {
            const f = new Uint8Array(size(k));
            for (let j = 0; j < f.length; j++) f[j] = byte(k, j);
            batch.push(f);
          }
          await p.client.write(batch);
        }
      })();
      const kept: Uint8Array[] = [];
      while (kept.length < count) {
        // Reads run while the writer writes, so reads end inside frames.
        const got = kept.length % 2 === 0 && p.server.readMany !== undefined
          ? await p.server.readMany()
          : [await p.server.read()];
        assert.ok(got !== null && got[0] !== null, `stream ended after ${kept.length} frames`);
        for (const f of got) kept.push(f!);
      }
      await writer;
      for (let i = 0; i < count; i++) {
        const f = kept[i]!;
        assert.equal(f.length, size(i), `frame ${i}: length`);
        for (let j = 0; j < f.length; j++) {
          if (f[j] !== byte(i, j)) {
            assert.fail(`frame ${i}: byte ${j} is ${f[j]}, not ${byte(i, j)}`);
          }
        }
      }
    } finally {
      await p.done();
    }
  });

  Deno.test(`${name} transport: readMany, where offered, gives the same frames in order, then null`, async () => {
    const p = await pair();
    try {
      if (p.server.readMany === undefined) return;
      for (let i = 0; i < 2000; i += 100) {
        await p.client.write(Array.from({ length: 100 }, (_, j) => frame(i + j)));
      }
      // Interleaving read() and readMany() keeps the order.
      const first = await p.server.read();
      assert.equal(new DataView(first!.buffer, first!.byteOffset).getUint32(0), 0);
      let next = 1;
      while (next < 2000) {
        const batch = await p.server.readMany();
        assert.ok(batch !== null && batch.length >= 1);
        for (const got of batch) {
          assert.equal(new DataView(got.buffer, got.byteOffset).getUint32(0), next++);
        }
      }
      p.client.close();
      assert.equal(await p.server.readMany(), null);
    } finally {
      await p.done();
    }
  });

  Deno.test(`${name} transport: a frame over the reader's limit is refused before allocation`, async () => {
    const p = await pair();
    try {
      p.server.frameBytesMax = 1024;
      await p.client.write([new Uint8Array(1024)]);
      assert.equal((await p.server.read())?.length, 1024);
      await p.client.write([new Uint8Array(1025)]);
      await assert.rejects(() => p.server.read(), FrameTooLargeError);
    } finally {
      await p.done();
    }
  });

  Deno.test(`${name} transport: close ends the other side's stream`, async () => {
    const p = await pair();
    try {
      await p.client.write([frame(1)]);
      p.client.close();
      assert.deepEqual(await p.server.read(), frame(1));
      assert.equal(await p.server.read(), null);
      p.client.close(); // idempotent
    } finally {
      await p.done();
    }
  });

  Deno.test(`${name} transport: a pending read resolves null on local close`, async () => {
    const p = await pair();
    try {
      const pending = p.server.read();
      p.server.close();
      assert.equal(await pending, null);
    } finally {
      await p.done();
    }
  });

  Deno.test(`${name} transport: connecting where nobody listens is refused`, async () => {
    const t = await fixture.transport();
    const l = await t.listen(fixture.listenAddr(t));
    const addr = l.addr;
    l.close();
    try {
      await assert.rejects(() => t.connect(addr));
      assert.equal(await l.accept(), null, "a closed listener accepts nothing");
    } finally {
      await fixture.teardown?.();
    }
  });

  Deno.test(`${name} transport: a writer to a peer that does not read is held back`, async () => {
    const p = await pair();
    try {
      p.server.frameBytesMax = 1 << 20;
      const big = new Uint8Array(64 * 1024);
      let written = 0;
      let stalled = false;
      // Write until a write stays pending: the transport applies backpressure.
      for (let i = 0; i < 4096 && !stalled; i++) {
        const w = p.client.write([big]).then(() => true, () => true);
        let timer: ReturnType<typeof setTimeout> | undefined;
        const r = await Promise.race([
          w,
          new Promise<false>((res) => (timer = setTimeout(() => res(false), 50))),
        ]);
        clearTimeout(timer);
        if (r) written++;
        else stalled = true;
      }
      assert.ok(stalled, `write never blocked after ${written} frames of 64 KiB`);
      assert.ok(written < 4096);
    } finally {
      await p.done();
    }
  });
}
