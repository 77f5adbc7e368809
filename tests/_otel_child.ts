// A node with murmur's metrics on, for tests/metrics_test.ts: runs under
// OTEL_DENO=true, does a known amount of work, prints {"done": {...}} with
// what it did, and stays up (exporting) until its stdin closes.

import {
  type DurableBehaviour,
  DurableServer,
  MemoryStorage,
  Node,
  Plumtree,
  ProcessGroups,
} from "../mod.ts";
import { instrumentMetrics } from "../metrics/mod.ts";
import { LogHandler } from "./_plumtree_fixture.ts";

const Counter: DurableBehaviour<number, "get", number, never, number> = {
  init: () => ({ state: 0 }),
  handleCall: (_m, _from, n) => ({ reply: n, state: n }),
  handleCast: (add, n) => ({ state: n + add }),
};

const opts = { cookie: "otel", logger: () => {} };
await using a = await Node.start({ name: "a", ...opts });
await using b = await Node.start({ name: "b", ...opts });
b.register("echo", (m) => m);
await a.join(b.spec);
const ha = new LogHandler(), hb = new LogHandler();
await using pa = await Plumtree.start(a, { handlers: [ha] });
await using pb = await Plumtree.start(b, { handlers: [hb] });
a.register("worker", () => "ok");
await using pg = await ProcessGroups.start(a, "jobs");
await using storage = new MemoryStorage();
await using server = await DurableServer.start(Counter, null, { storage, tenant: ["counter"] });
await using metrics = instrumentMetrics({
  node: a,
  plumtree: pa,
  publishers: { jobs: pg },
  durable: { counter: server },
}, { pollMs: 100 });

// A third node joins after the metrics started: one "up" transition at a.
await using c = await Node.start({ name: "c", ...opts });
const cUp = new Promise<void>((resolve) => {
  const off = a.onUp("c", () => (off(), resolve()));
});
await c.join(a.spec);
await cUp;
for (let i = 0; i < 5; i++) await a.call("b", "echo", i);
await a.call("b", "nope", 0).catch(() => {});
await pg.join("resize", "worker");
await server.cast(2);
await server.cast(3);
const total = await server.call("get");
// Broadcasts from b reach a (bounded wait for the three deliveries).
for (let i = 0; i < 3; i++) await pb.broadcast({ id: `m${i}`, body: "x" }, "log");
for (let i = 0; i < 500 && ha.delivered.length < 3; i++) {
  await new Promise((r) => setTimeout(r, 10));
}
console.log(JSON.stringify({
  done: {
    enabled: metrics.enabled,
    calls: 6,
    failedCalls: 1,
    delivered: ha.delivered.length,
    total,
    commits: server.stats().commits,
  },
}));
// Stay up until the test closes stdin (at most 30 s).
const stdin = Deno.stdin.readable.getReader();
let timer: ReturnType<typeof setTimeout> | undefined;
await Promise.race([stdin.read(), new Promise((r) => timer = setTimeout(r, 30_000))]);
clearTimeout(timer);
stdin.releaseLock();
