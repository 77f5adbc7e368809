// Bounded delivery: acknowledged sends have a byte bound and a timeout,
// fire-and-forget sends never reject for delivery reasons, Infinity means no
// timeout, values that cannot cross the wire are refused where they are sent,
// and the default logger shows what an operator needs.

import assert from "node:assert/strict";
import { consoleLogger, type LogRecord, MurmurError, Node, QueueFullError } from "../mod.ts";
import { converged, nextEvent, NodeProcess, startNode, withPeerDown } from "./_helpers.ts";

Deno.test("an unawaited send to a down or unknown node never rejects; the drop is counted", async () => {
  await using a = await withPeerDown();
  const before = a.stats().sendDrops;
  // Unawaited on purpose, as Erlang's `!`: neither may become an unhandled rejection.
  a.send("b", "echo", "to a down node");
  a.send("nobody", "echo", "to an unknown node");
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(a.stats().sendDrops - before, 2);
  // Programming errors still throw, synchronously.
  assert.throws(() => a.send("b", "", 1), TypeError);
  assert.throws(() => a.send("b", "echo", 1, { channel: "nope" }), TypeError);
});

Deno.test("a sender that awaits send is paced at the high-water mark; nothing is refused or lost", async () => {
  const highWater = 64 * 1024;
  await assert.rejects(
    () =>
      Node.start({
        name: "x",
        cookie: "c",
        sendQueueBytesMax: 1024,
        sendQueueHighWaterBytes: 2048,
      }),
    /sendQueueHighWaterBytes \(2048\) must be at most sendQueueBytesMax \(1024\)/,
  );
  await using a = await startNode("a", { sendQueueHighWaterBytes: highWater });
  await using b = await startNode("b");
  await b.join(a.spec);
  await converged([a, b], ["a", "b"]);
  const count = 64;
  let got = 0;
  const all = Promise.withResolvers<void>();
  b.register("sink", () => void (++got === count && all.resolve()));
  const settledNow = async (p: Promise<void>) => {
    let settled = false;
    void p.then(() => settled = true);
    for (let i = 0; i < 5; i++) await Promise.resolve(); // microtasks only: no I/O can happen
    return settled;
  };
  const payload = new Uint8Array(16 * 1024);
  // Under the mark, a send's promise is settled at once.
  assert.ok(await settledNow(a.send("b", "sink", payload)), "under the mark: settled at once");
  let paced: Promise<void> | undefined;
  for (let i = 1; i < count; i++) {
    const p = a.send("b", "sink", payload); // queued, whatever the promise says
    if (paced === undefined && a.stats().queuedBytes > highWater) paced = p;
  }
  assert.ok(paced !== undefined, `queued ${a.stats().queuedBytes} bytes`);
  assert.equal(await settledNow(paced), false, "over the mark: pending until the queue drains");
  await paced;
  assert.ok(a.stats().queuedBytes <= highWater, `${a.stats().queuedBytes} bytes still queued`);
  await all.promise;
  assert.equal(got, count);
  assert.equal(a.stats().sendDrops, 0);
});

Deno.test("timeoutMs: Infinity means no timeout; acknowledged sends time out with a named error", async () => {
  await using a = await startNode("a");
  await using b = await startNode("b");
  b.register("slow", () => new Promise((r) => setTimeout(() => r("late"), 150)));
  await b.join(a.spec);
  await converged([a, b], ["a", "b"]);
  assert.equal(await a.call("b", "slow", null, { timeoutMs: Infinity }), "late");

  b.injectPartition("a"); // b drops everything: no acknowledgement can come back
  const t0 = performance.now();
  const e = await a.send("b", "slow", 1, { ack: true, timeoutMs: 300 }).catch((e) => e);
  const ms = performance.now() - t0;
  assert.ok(e instanceof MurmurError && e.name === "AckTimeoutError", `got ${e}`);
  assert.ok(ms >= 290 && ms < 1000, `rejected after ${ms.toFixed(0)} ms`);
});

Deno.test("acknowledged sends to a stopped peer stay under their byte bound", async () => {
  const ackBytesMax = 8 * 1024 * 1024;
  await using a = await startNode("a", { failureTimeoutMs: 30_000, ackBytesMax });
  const b = new NodeProcess(["--name", "b", "--join", `127.0.0.1:${a.spec.listenAddrs[0]!.port}`]);
  try {
    await b.ready();
    await nextEvent(a, "up", "b", 15000);
    b.child.kill("SIGSTOP");
    const payload = new Uint8Array(64 * 1024);
    const rss0 = Deno.memoryUsage().rss;
    let full = 0, waiting = 0;
    const results: Promise<unknown>[] = [];
    for (let i = 0; i < 20_000; i++) {
      results.push(
        a.send("b", "echo", payload, { ack: true, timeoutMs: 60_000 }).then(
          () => "acked",
          (e) => (e instanceof QueueFullError ? full++ : e),
        ),
      );
      if (i % 1000 === 999) await new Promise((r) => setTimeout(r, 0));
    }
    await new Promise((r) => setTimeout(r, 200));
    const grown = Deno.memoryUsage().rss - rss0;
    waiting = results.length - full;
    console.log(
      `20,000 x 64 KiB acked sends: ${full} refused (QueueFullError), ${waiting} waiting; ` +
        `unacknowledged ${(a.stats().ackBytes / 2 ** 20).toFixed(1)} MiB; rss +${
          (grown / 2 ** 20).toFixed(0)
        } MiB`,
    );
    assert.ok(a.stats().ackBytes <= ackBytesMax, `unacknowledged bytes ${a.stats().ackBytes}`);
    assert.ok(full > 10_000, "past the bound, sends are refused with QueueFullError");
    assert.ok(grown < 256 * 2 ** 20, `rss grew ${(grown / 2 ** 20).toFixed(0)} MiB`);
    b.child.kill("SIGCONT");
    await a.close(); // rejects what still waits
    await Promise.allSettled(results);
  } finally {
    await b.kill();
  }
});

Deno.test("values that cannot cross the wire are refused at the send, naming the endpoint and the path", async () => {
  await using a = await startNode("a");
  await using b = await startNode("b");
  await b.join(a.spec);
  await converged([a, b], ["a", "b"]);
  const fn = () => {
    a.send("b", "jobs", { items: [1, 2, 3, { callback() {} }] });
  };
  assert.throws(fn, (e: Error) => {
    assert.ok(e instanceof TypeError, String(e));
    assert.match(e.message, /"jobs"/);
    assert.match(e.message, /msg\.items\[3\]\.callback is a function/);
    return true;
  });
  const cyclic: Record<string, unknown> = { a: { list: [] as unknown[] } };
  (cyclic.a as { list: unknown[] }).list.push(cyclic);
  await assert.rejects(() => a.call("b", "jobs", cyclic), /msg\.a\.list\[0\] is a cycle/);
  assert.throws(() => a.send("b", "jobs", { s: Symbol("x") }), /msg\.s is a symbol/);
  assert.throws(() => a.send("b", "jobs", { e: new Error("x") }), /msg\.e is an Error/);
});

Deno.test("the default logger shows membership changes and refused handshakes with the address", async () => {
  const lines: string[] = [];
  const origError = console.error, origLog = console.log, origInfo = console.info;
  console.error = console.log = console.info = (...args: unknown[]) =>
    void lines.push(args.join(" "));
  try {
    const a = await Node.start({ name: "a", cookie: "c", gossipIntervalMs: 200 });
    const b = await Node.start({ name: "b", cookie: "c" });
    const x = await Node.start({ name: "x", cookie: "wrong", logger: () => {} });
    await b.join(a.spec);
    await x.join(a.spec).catch(() => {});
    await b.close();
    await new Promise((r) => setTimeout(r, 100));
    await x.close();
    await a.close();
  } finally {
    console.error = origError;
    console.log = origLog;
    console.info = origInfo;
  }
  const text = lines.join("\n");
  assert.match(text, /info.*a.*peer=b.*up/);
  assert.match(text, /info.*a.*peer=b.*down/);
  assert.match(text, /warn.*a.*127\.0\.0\.1:\d+.*cookie/);
  assert.equal(typeof consoleLogger, "function");
  void ({} as LogRecord);
});
