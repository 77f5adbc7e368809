// A durable-server process for the multi-process tests. Prints one JSON line per event.
//   --path FILE      the Deno KV file
//   --etcd URLS      or an etcd cluster (comma-separated client URLs), with --prefix NAME
//   --mode consume   consume the counter's queue (callbacks sleep a little, to be killed mid-way)
//   --mode produce   cast --count increments, one commit each, tagged with --producer,
//                    --pace-ms apart
//   --mode lock      consume; a "long" cast locks and handleLocked never returns (to be SIGKILLed)
//   --mode slowlock  consume; a "long" cast locks and handleLocked takes --locked-ms
//   --clock-offset-ms N  this process's clock runs N ms off (wall and "monotonic" alike)
import { parseArgs } from "node:util";
import {
  type Clock,
  DenoKvStorage,
  type DurableBehaviour,
  DurableServer,
  type Storage,
} from "../mod.ts";
import { EtcdStorage } from "../durable/etcd.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    path: { type: "string" },
    etcd: { type: "string" },
    prefix: { type: "string", default: "crash" },
    "pace-ms": { type: "string", default: "0" },
    mode: { type: "string", default: "consume" },
    count: { type: "string", default: "0" },
    producer: { type: "string", default: "p" },
    "lock-timeout-ms": { type: "string", default: "1000" },
    "locked-ms": { type: "string", default: "0" },
    "clock-offset-ms": { type: "string", default: "0" },
  },
});

export type CounterState = { n: number; seen: Record<string, number>; order: string[] };
export type CounterCast = { by: string; i: number } | "long";
const emit = (e: Record<string, unknown>) => console.log(JSON.stringify({ t: Date.now(), ...e }));
const offset = Number(values["clock-offset-ms"]);
// A skewed clock: what a process whose system clock is off would use.
const clock: Clock = {
  now: () => Date.now() + offset,
  wallNow: () => Date.now() + offset,
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (id) => clearTimeout(id as number),
};

const hang = values.mode === "lock";
const Counter: DurableBehaviour<CounterState, "get", CounterCast> = {
  init: () => ({ state: { n: 0, seen: {}, order: [] } }),
  handleCall: (_m, _f, s) => ({ reply: s, state: s }),
  handleCast: async (m, s) => {
    if (m === "long") return { lock: s };
    await new Promise((r) => setTimeout(r, Math.random() * 2));
    const last = s.seen[m.by] ?? -1;
    // FIFO per producer: each producer's casts arrive in order.
    if (m.i !== last + 1) throw new Error(`out of order from ${m.by}: ${m.i} after ${last}`);
    return { state: { n: s.n + 1, seen: { ...s.seen, [m.by]: m.i }, order: s.order } };
  },
  handleLocked: async (_ev, _m, s) => {
    emit({ event: "locked", pid: Deno.pid });
    if (hang) await new Promise(() => {}); // holds the lock until SIGKILLed
    await new Promise((r) => setTimeout(r, Number(values["locked-ms"])));
    emit({ event: "unlocked", pid: Deno.pid });
    return { state: { ...s, order: [...s.order, `unlocked-by-${Deno.pid}`] } };
  },
};

const storage: Storage = values.etcd
  ? await EtcdStorage.open({
    endpoints: values.etcd.split(","),
    prefix: [values.prefix],
    requestTimeoutMs: 1000,
    watchPollMs: 250,
  })
  : await DenoKvStorage.open(values.path!, { pollIntervalMs: 20 });
const server = await DurableServer.start(Counter, null, {
  storage,
  tenant: ["counter"],
  consume: values.mode !== "produce",
  consumeBatch: 4,
  lockTimeoutMs: Number(values["lock-timeout-ms"]),
  clock,
  logger: () => {},
});
emit({ event: "ready", pid: Deno.pid });
if (values.mode === "produce") {
  const pace = Number(values["pace-ms"]);
  for (let i = 0; i < Number(values.count); i++) {
    await server.cast({ by: values.producer, i });
    if (pace > 0) await new Promise((r) => setTimeout(r, pace));
  }
  emit({ event: "produced", count: Number(values.count) });
  await server.stop();
  await storage.close();
} else {
  Deno.addSignalListener("SIGTERM", async () => {
    await server.stop();
    await storage.close();
    Deno.exit(0);
  });
}
