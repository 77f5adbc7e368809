// `deno task bench:durable`: one run, side by side, on MemoryStorage, Deno KV
// `:memory:`, Deno KV on a file, and etcd (a 3-member cluster started here on
// 127.0.0.1, when etcd is installed). For each storage: the raw sequential commit
// rate (one small set per commit), then casts processed per second (one
// producer; batches of 1 and of consumeBatch) and calls per second (1 and 32
// concurrent callers), each as a ratio of that raw rate.
//
// etcd's raw rate is etcd's own limit for this access pattern, measured without
// murmur: a loop of single-key compare-and-put transactions (compare the key's
// mod_revision with the one the previous answer gave, put 16 bytes), sent one at
// a time over one keep-alive HTTP connection to the leader's v3 JSON gateway, with
// the request bodies prebuilt (only the revision changes).

import {
  atomic,
  DenoKvStorage,
  type DurableBehaviour,
  DurableServer,
  MemoryStorage,
  type Storage,
} from "../mod.ts";
import { EtcdStorage } from "../durable/etcd.ts";
import { EtcdCluster, etcdUnavailable } from "../tests/_etcd_cluster.ts";

const DURATION_MS = Number(Deno.env.get("BENCH_MS") ?? 1500);
const BATCH = 64;

const Counter: DurableBehaviour<number, "get", number, never, number> = {
  init: () => ({ state: 0 }),
  handleCall: (_m, _f, n) => ({ reply: n, state: n + 1 }),
  handleCast: (m, n) => ({ state: n + m }),
};

let tenantSeq = 0;
const tenant = () => ["bench", tenantSeq++];

async function rawCommits(db: Storage): Promise<number> {
  const value = new Uint8Array(16);
  const t = tenant();
  let n = 0;
  const start = performance.now();
  while (performance.now() - start < DURATION_MS) {
    await atomic(db).set([...t, "k", n % 100], value).commit();
    n++;
  }
  return n / ((performance.now() - start) / 1000);
}

async function casts(db: Storage, batch: number): Promise<number> {
  const t = tenant();
  // The reader counts via priorityCall, which adds 1 to the state per read; casts add 1000 each.
  const consumer = await DurableServer.start(Counter, null, {
    storage: db,
    tenant: t,
    consumeBatch: batch,
  });
  const producer = await DurableServer.start(Counter, null, {
    storage: db,
    tenant: t,
    consume: false,
  });
  let sent = 0;
  const start = performance.now();
  while (performance.now() - start < DURATION_MS) {
    if (batch === 1) {
      await producer.cast(1000);
      sent++;
    } else {
      await producer.castBatch(Array.from({ length: batch }, () => 1000));
      sent += batch;
    }
  }
  await waitProcessedCasts(producer, sent);
  const rate = sent / ((performance.now() - start) / 1000);
  await producer.stop();
  await consumer.stop();
  return rate;
}

async function waitProcessedCasts(
  server: DurableServer<number, "get", number, never, number>,
  sent: number,
): Promise<void> {
  for (let i = 0; i < 100_000; i++) {
    const n = await server.priorityCall("get");
    if (Math.floor(n / 1000) >= sent) return;
    await new Promise((r) => setTimeout(r, 2));
  }
  throw new Error("casts not processed");
}

async function calls(db: Storage, concurrency: number): Promise<number> {
  const t = tenant();
  const server = await DurableServer.start(Counter, null, {
    storage: db,
    tenant: t,
    consumeBatch: concurrency,
  });
  let count = 0;
  const start = performance.now();
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (performance.now() - start < DURATION_MS) {
      await server.call("get");
      count++;
    }
  }));
  const rate = count / ((performance.now() - start) / 1000);
  await server.stop();
  return rate;
}

const fmt = (x: number) => Math.round(x).toLocaleString("en-US");
console.log(
  `murmur durable comparison (${
    new Date().toISOString()
  }, Deno ${Deno.version.deno}), ${DURATION_MS} ms per figure`,
);
const file = await Deno.makeTempFile({ prefix: "murmur-bench-", suffix: ".sqlite" });
const storages: [string, () => Promise<Storage>][] = [
  ["MemoryStorage", () => Promise.resolve(new MemoryStorage())],
  ["Deno KV :memory:", () => DenoKvStorage.open(":memory:")],
  ["Deno KV file", () => DenoKvStorage.open(file)],
];
console.log(
  "\n| storage | raw commits/s | casts/s, batch 1 | casts/s, batch 64 | calls/s, 1 caller | calls/s, 32 callers |",
);
console.log("| --- | ---: | ---: | ---: | ---: | ---: |");
for (const [name, open] of storages) {
  const db = await open();
  await rawCommits(db); // warm-up
  // Every ratio is to this storage's own raw sequential commit rate, measured in this run.
  const raw = await rawCommits(db);
  const own = raw;
  const c1 = await casts(db, 1);
  const cb = await casts(db, BATCH);
  const k1 = await calls(db, 1);
  const k32 = await calls(db, 32);
  const r = (x: number) => `${fmt(x)} (**${(x / raw).toFixed(2)}x**)`;
  console.log(`| ${name} | ${fmt(own)} | ${r(c1)} | ${r(cb)} | ${r(k1)} | ${r(k32)} |`);
  await db.close();
}
for (const s of ["", "-wal", "-shm"]) await Deno.remove(file + s).catch(() => {});

/** etcd's own rate for sequential single-key compare-and-put transactions, over its gateway. */
async function rawEtcd(endpoint: string): Promise<number> {
  const key = btoa("murmur-bench-raw");
  const value = btoa("0123456789abcdef");
  const put = async (body: string) => {
    const res = await fetch(`${endpoint}/v3/kv/txn`, { method: "POST", body });
    const j = await res.json();
    if (!j.succeeded) throw new Error(`raw etcd txn failed: ${JSON.stringify(j)}`);
    return String(j.header.revision);
  };
  const head = `{"compare":[{"key":"${key}","target":"MOD","mod_revision":"`;
  const tail = `"}],"success":[{"request_put":{"key":"${key}","value":"${value}"}}]}`;
  // Start from a known revision: delete, then create.
  await fetch(`${endpoint}/v3/kv/deleterange`, {
    method: "POST",
    body: JSON.stringify({ key }),
  }).then((r) => r.body?.cancel());
  let rev = await put(head + "0" + tail);
  let n = 0;
  const start = performance.now();
  while (performance.now() - start < DURATION_MS) {
    rev = await put(head + rev + tail);
    n++;
  }
  return n / ((performance.now() - start) / 1000);
}

async function etcdRow(tmpfs: boolean): Promise<void> {
  const cluster = await EtcdCluster.start(3, { tmpfs });
  try {
    const where = cluster.data.startsWith("/dev/shm") ? "tmpfs" : "disk";
    const leader = cluster.endpoints[await cluster.leader()]!;
    const others = cluster.endpoints.filter((e) => e !== leader);
    await rawEtcd(leader); // warm-up
    const raw = await rawEtcd(leader);
    const db = await EtcdStorage.open({ endpoints: [leader, ...others], prefix: ["bench"] });
    const own = await rawCommits(db);
    const c1 = await casts(db, 1);
    const cb = await casts(db, BATCH);
    const k1 = await calls(db, 1);
    const k32 = await calls(db, 32);
    const r = (x: number) => `${fmt(x)} (**${(x / raw).toFixed(2)}x**)`;
    console.log(
      `| etcd, 3 members, ${where} (raw txn loop ${fmt(raw)}/s) | ${r(own)} | ${r(c1)} | ${
        r(cb)
      } | ${r(k1)} | ${r(k32)} |`,
    );
    await db.close();
  } finally {
    await cluster.close();
  }
}

const why = Deno.env.get("BENCH_ETCD") === "0" ? "BENCH_ETCD=0" : await etcdUnavailable();
if (why) console.log(`| etcd | skipped: ${why} | | | | |`);
else {
  await etcdRow(false);
  await etcdRow(true);
}
console.log(
  "\nRatios (in bold) are to each storage's own raw sequential commit rate in the same run (the raw commits/s\n" +
    "column); for etcd, to the raw etcd transaction loop of its row\n" +
    "(data on disk or on tmpfs, as the row says), where the raw commits/s column is murmur's EtcdStorage.commit\n" +
    "(one small set per commit). Targets: batched casts >= 1.0x; calls >= 0.3x.",
);
