// The etcd backend against a real 3-member cluster started here (skipped, with
// the reason printed, where etcd is not installed).

import assert from "node:assert/strict";
import { type DurableBehaviour, DurableServer } from "../durable/mod.ts";
import { testStorage } from "../testing.ts";
import { EtcdStorage } from "../durable/etcd.ts";
import { sleep } from "../durable/_etcd_client.ts";
import type { Check, Key, Storage } from "../durable/storage.ts";
import { EtcdCluster, etcdUnavailable } from "./_etcd_cluster.ts";
import { crashRun } from "./_durable_crash.ts";

const reason = await etcdUnavailable();
if (reason) console.log(`etcd tests skipped: ${reason}`);
const cluster = reason ? undefined : await EtcdCluster.start(3);
if (cluster) globalThis.addEventListener("unload", () => cluster.closeSync());

const prefixes = new WeakMap<Storage, Key>();
async function openEtcd(prefix: Key = ["t", crypto.randomUUID()]): Promise<EtcdStorage> {
  const db = await EtcdStorage.open({ endpoints: cluster!.endpoints, prefix });
  prefixes.set(db, prefix);
  return db;
}

testStorage("etcd (3 members)", {
  open: () => openEtcd(),
  reopen: (first) => openEtcd(prefixes.get(first)),
  ...(reason ? { skip: reason } : {}),
});

/**
 * An HTTP relay in front of one etcd member: forwards requests, or applies a
 * rule to a matching one (forward it and cut the answer; hold it and cut the
 * answer, to forward later).
 */
class Relay {
  readonly server: Deno.HttpServer<Deno.NetAddr>;
  readonly held: { path: string; body: string }[] = [];
  rule: (
    path: string,
    body: string,
  ) => "forward" | "lose-answer" | "hold" | Promise<"forward" | "lose-answer" | "hold"> = () =>
    "forward";
  readonly #target: string;

  constructor(target: string) {
    this.#target = target;
    this.server = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen: () => {} },
      async (req) => {
        const path = new URL(req.url).pathname;
        const body = await req.text();
        const action = await this.rule(path, body);
        if (action === "hold") {
          this.held.push({ path, body });
          return cut();
        }
        const res = await fetch(this.#target + path, { method: "POST", body });
        const text = await res.text();
        return action === "lose-answer" ? cut() : new Response(text, { status: res.status });
      },
    );
  }

  get url(): string {
    return `http://127.0.0.1:${this.server.addr.port}`;
  }

  /** Forwards what was held, now; returns etcd's answers. */
  async release(): Promise<unknown[]> {
    const out = [];
    for (const h of this.held.splice(0)) {
      const res = await fetch(this.#target + h.path, { method: "POST", body: h.body });
      out.push(await res.json());
    }
    return out;
  }

  async close(): Promise<void> {
    await this.server.shutdown();
  }
}

/** A response whose body breaks: the client sees its connection fail mid-answer. */
function cut(): Response {
  return new Response(
    new ReadableStream({ start: (c) => c.error(new Error("connection cut by the relay")) }),
    { status: 200 },
  );
}

/** A transaction that writes a value containing `what`. */
function isTxn(path: string, body: string, what: string): boolean {
  if (path !== "/v3/kv/txn") return false;
  const txn = JSON.parse(body) as { success?: { request_put?: { value?: string } }[] };
  return (txn.success ?? []).some((op) =>
    op.request_put?.value !== undefined && atob(op.request_put.value).includes(what)
  );
}

Deno.test({
  name: "etcd: a commit whose answer was lost is resolved, applied exactly once",
  ignore: cluster === undefined,
  fn: async () => {
    const relay = new Relay(cluster!.endpoints[0]!);
    const prefix: Key = ["lost", crypto.randomUUID()];
    const db = await EtcdStorage.open({
      endpoints: [relay.url, ...cluster!.endpoints.slice(1)],
      prefix,
      retryDeadlineMs: 10_000,
    });
    try {
      let cuts = 0;
      relay.rule = (
        path,
        body,
      ) => (isTxn(path, body, "counted") && cuts++ === 0 ? "lose-answer" : "forward");
      const r = await db.commit([], [
        { type: "sum", key: ["n"], value: 1n },
        { type: "set", key: ["v"], value: new TextEncoder().encode("counted") },
      ]);
      assert.equal(cuts, 1, "the first answer was lost (the commit had reached etcd)");
      assert.ok(r.ok);
      const e = await db.get(["n"]);
      assert.equal(e.value, 1n, "applied once, not twice");
      assert.equal(e.versionstamp, r.versionstamp, "the versionstamp of the attempt that applied");
    } finally {
      await db.close();
      await relay.close();
    }
  },
});

Deno.test({
  name: "etcd: a lost attempt whose checks then fail is fenced and can never apply later",
  ignore: cluster === undefined,
  fn: async () => {
    const relay = new Relay(cluster!.endpoints[0]!);
    const prefix: Key = ["fence", crypto.randomUUID()];
    const other = await EtcdStorage.open({ endpoints: cluster!.endpoints.slice(1), prefix });
    const db = await EtcdStorage.open({
      endpoints: [relay.url, ...cluster!.endpoints.slice(1)],
      prefix,
      retryDeadlineMs: 10_000,
    });
    try {
      const enc = (s: string) => new TextEncoder().encode(s);
      relay.rule = async (path, body) => {
        if (!isTxn(path, body, "late")) return "forward";
        // The request is held (not yet at etcd) and its answer lost; meanwhile "k" appears.
        assert.ok((await other.commit([], [{ type: "set", key: ["k"], value: enc("v1") }])).ok);
        return "hold";
      };
      const r = await db.commit(
        [{ key: ["k"], versionstamp: null }],
        [{ type: "set", key: ["late"], value: enc("late") }],
      );
      assert.deepEqual(r, { ok: false }, "the check failed: reported as such, not as an error");
      assert.equal(relay.held.length, 1);
      // "k" goes away again, so the held attempt's check would hold; it reaches etcd late.
      await other.commit([], [{ type: "delete", key: ["k"] }]);
      const answers = await relay.release() as { succeeded?: boolean }[];
      assert.notEqual(answers[0]?.succeeded, true, "the late attempt did not apply");
      assert.equal((await other.get(["late"])).value, null);
    } finally {
      await db.close();
      await other.close();
      await relay.close();
    }
  },
});

Deno.test({
  name: "etcd: a counter deleted and summed again; values written by others",
  ignore: cluster === undefined,
  fn: async () => {
    const db = await openEtcd();
    try {
      await db.commit([], [{ type: "sum", key: ["c"], value: 5n }]);
      await db.commit([], [{ type: "delete", key: ["c"] }]);
      const r = await db.commit([], [{ type: "sum", key: ["c"], value: 2n }]);
      assert.ok(r.ok);
      assert.equal((await db.get(["c"])).value, 2n);
      await db.commit([], [{ type: "set", key: ["b"], value: new Uint8Array([1]) }]);
      await assert.rejects(
        () => db.commit([], [{ type: "sum", key: ["b"], value: 1n }]),
        /does not hold a counter/,
      );
    } finally {
      await db.close();
    }
  },
});

Deno.test({
  name:
    "etcd: a durable server answers concurrent calls (its own consumer's replies race the reply watch)",
  ignore: cluster === undefined,
  fn: async () => {
    await using db = await openEtcd();
    const Counter: DurableBehaviour<number, "inc", never, never, number> = {
      init: () => ({ state: 0 }),
      handleCall: (_m, _f, n) => ({ reply: n + 1, state: n + 1 }),
      handleCast: (_m, n) => ({ state: n }),
    };
    await using server = await DurableServer.start(Counter, null, {
      storage: db,
      tenant: ["calls"],
      consumeBatch: 32,
      logger: () => {},
    });
    const replies = (await Promise.all(
      Array.from({ length: 32 }, async () => {
        const got: number[] = [];
        for (let i = 0; i < 20; i++) got.push(await server.call("inc", { timeoutMs: 10_000 }));
        return got;
      }),
    )).flat();
    assert.equal(replies.length, 640);
    assert.deepEqual(
      [...replies].sort((a, b) => a - b),
      Array.from({ length: 640 }, (_, i) => i + 1),
    );
  },
});

const SEED = Number(Deno.env.get("CRASH_SEED") ?? Date.now() % 2 ** 31);

Deno.test({
  name: `etcd: durable crash test, a consumer SIGKILLed again and again (CRASH_SEED=${SEED})`,
  ignore: cluster === undefined,
  fn: async () => {
    console.log(`CRASH_SEED=${SEED}`);
    const prefix = `crash-${crypto.randomUUID()}`;
    const r = await crashRun({
      storageArgs: ["--etcd", cluster!.endpoints.join(","), "--prefix", prefix],
      open: () => EtcdStorage.open({ endpoints: cluster!.endpoints, prefix: [prefix] }),
      seed: SEED,
      // 400 increments, not the Deno KV test's 1000: on etcd each costs a few
      // ms of three members' CPU. The 8 kills still come while the queue is
      // produced or drained, which is what they test.
      count: 400,
      callEveryMs: 100,
    });
    console.log(
      `${r.kills} SIGKILLs; counter = ${r.state?.n}; calls: ${r.calls.answered} answered, ` +
        `failed ${JSON.stringify(r.calls.failed)}, longest ${r.calls.longestMs} ms ` +
        `(timers up to ${r.calls.timersLateMs} ms late)`,
    );
  },
});

Deno.test({
  name:
    `etcd: durable crash test while the leader is SIGKILLed and restarted and a follower is stopped (CRASH_SEED=${SEED})`,
  ignore: cluster === undefined,
  fn: async () => {
    const c = cluster!;
    const prefix = `chaos-${crypto.randomUUID()}`;
    const t0 = Date.now();
    const at = () => `${((Date.now() - t0) / 1000).toFixed(1)} s`;
    const r = await crashRun({
      storageArgs: ["--etcd", c.endpoints.join(","), "--prefix", prefix],
      open: () =>
        EtcdStorage.open({ endpoints: c.endpoints, prefix: [prefix], requestTimeoutMs: 1000 }),
      seed: SEED + 1,
      paceMs: 8,
      // Kills through the leader's death and the follower's stop (about 7 s), not
      // through all of the production: each is a process start.
      killsMax: 16,
      callEveryMs: 100,
      chaos: async (signal) => {
        const log: string[] = [];
        await sleep(800, signal);
        if (signal.aborted) return log;
        const leader = await c.leader();
        await c.kill(leader, "SIGKILL");
        log.push(`${at()}: leader m${leader} SIGKILLed`);
        await sleep(1500, signal);
        c.restart(leader);
        log.push(`${at()}: m${leader} restarted`);
        await sleep(1500, signal);
        if (signal.aborted) return log;
        const now = await c.leader();
        const follower = [0, 1, 2].find((i) => i !== now)!;
        c.stop(follower);
        log.push(`${at()}: follower m${follower} SIGSTOPped (leader m${now})`);
        await sleep(3000, signal);
        c.cont(follower);
        log.push(`${at()}: m${follower} SIGCONTinued`);
        return log;
      },
    });
    console.log(r.chaos.join("\n"));
    console.log(
      `${at()}: ${r.kills} SIGKILLs of consumers; counter = ${r.state?.n}; calls: ${r.calls.answered} answered, ` +
        `failed ${JSON.stringify(r.calls.failed)}, longest ${r.calls.longestMs} ms ` +
        `(timers up to ${r.calls.timersLateMs} ms late)`,
    );
    assert.equal(r.chaos.length, 4, "the leader died and a follower stopped while producing");
    await c.waitHealthy();
  },
});

Deno.test({
  name:
    "etcd: 32 concurrent enqueues on one handle go to etcd in a few transactions (group commit), each applied once, in order",
  ignore: cluster === undefined,
  fn: async () => {
    // They went one transaction at a time: a durable server's callers waited in line.
    const relay = new Relay(cluster!.endpoints[0]!);
    let txns = 0;
    relay.rule = (path) => {
      if (path === "/v3/kv/txn") txns++;
      return "forward";
    };
    const db = await EtcdStorage.open({
      endpoints: [relay.url],
      prefix: ["group", crypto.randomUUID()],
    });
    try {
      const results = await Promise.all(
        Array.from({ length: 32 }, (_, i) =>
          db.commit([], [
            { type: "appendOrdered", prefix: ["q"], value: new Uint8Array([i]) },
            { type: "sum", key: ["n"], value: 1n },
          ])),
      );
      assert.ok(results.every((r) => r.ok));
      console.log(`32 enqueues: ${txns} transactions`);
      assert.ok(txns <= 8, `${txns} transactions for 32 enqueues`);
      console.log(`group commit: ${JSON.stringify(db.groupStats())}`);
      assert.equal((await db.get(["n"])).value, 32n, "every sum applied once");
      const queued = await db.list({ prefix: ["q"] });
      assert.deepEqual(
        queued.map((e) => (e.value as Uint8Array)[0]),
        Array.from({ length: 32 }, (_, i) => i),
      );
    } finally {
      await db.close();
      await relay.close();
    }
  },
});

Deno.test({
  name:
    "etcd: a merged commit whose one member's check fails: that member reports failure, the others apply",
  ignore: cluster === undefined,
  fn: async () => {
    await using db = await openEtcd();
    await db.commit([], [{ type: "set", key: ["k"], value: new Uint8Array([1]) }]);
    const stale = (await db.get(["k"])).versionstamp;
    await db.commit([], [{ type: "set", key: ["k"], value: new Uint8Array([2]) }]);
    const append = (i: number, checks: Check[] = []) =>
      db.commit(checks, [{ type: "appendOrdered", prefix: ["q"], value: new Uint8Array([i]) }]);
    // The first goes alone; the next three wait, and go merged.
    const [a, b, c, d] = await Promise.all([
      append(0),
      append(1),
      append(2, [{ key: ["k"], versionstamp: stale }]),
      append(3),
    ]);
    assert.deepEqual([a.ok, b.ok, c.ok, d.ok], [true, true, false, true]);
    assert.ok(db.groupStats().splits >= 1, JSON.stringify(db.groupStats()));
    const queued = await db.list({ prefix: ["q"] });
    assert.deepEqual(queued.map((e) => (e.value as Uint8Array)[0]), [0, 1, 3]);
  },
});

Deno.test({
  name: "etcd: the test cluster stops and its data is removed",
  ignore: cluster === undefined,
  fn: async () => {
    await cluster!.close();
  },
});
