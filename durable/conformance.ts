/**
 * `testStorage`: the conformance suite every {@linkcode Storage} backend passes.
 * Call it from a test file with a factory for your backend.
 *
 * @module
 */

import assert from "node:assert/strict";
import { atomic, subspace } from "./atomic.ts";
import { commitCost } from "./limits.ts";
import { type Entry, type Key, type Mutation, type Storage, StorageLimitError } from "./storage.ts";

/** How the suite gets storages. */
export interface StorageFixture {
  /** A fresh, empty storage. */
  open(): Promise<Storage>;
  /**
   * A second handle on the same data as `first`, when the backend has such a
   * thing (another connection, another `Deno.Kv` on one file). Enables the
   * cross-handle watch and conflict tests.
   */
  reopen?(first: Storage): Promise<Storage>;
  /** Skip the whole suite, with the reason printed (for example, no server configured). */
  skip?: string;
}

const b = (s: string) => new TextEncoder().encode(s);
const s = (
  e: Entry,
) => (e.value instanceof Uint8Array ? new TextDecoder().decode(e.value) : e.value);

/**
 * Registers the conformance tests with `Deno.test`.
 *
 * @example Run it on the memory backend
 * ```ts ignore
 * import { MemoryStorage } from "@murmur/murmur/durable";
 * import { testStorage } from "@murmur/murmur/testing";
 * testStorage("memory", { open: () => Promise.resolve(new MemoryStorage()) });
 * ```
 */
export function testStorage(name: string, fixture: StorageFixture): void {
  const t = (title: string, fn: (db: Storage) => Promise<void>) =>
    Deno.test({
      name: `${name} storage: ${title}`,
      ignore: fixture.skip !== undefined,
      fn: async () => {
        const db = await fixture.open();
        try {
          await fn(db);
        } finally {
          await db.close();
        }
      },
    });
  if (fixture.skip !== undefined) {
    console.log(`${name} storage conformance skipped: ${fixture.skip}`);
  }

  t("get, set, delete and versionstamps", async (db) => {
    assert.deepEqual(await db.get(["missing"]), {
      key: ["missing"],
      value: null,
      versionstamp: null,
    });
    const r1 = await atomic(db).set(["a"], b("1")).commit();
    assert.ok(r1.ok);
    const e1 = await db.get(["a"]);
    assert.equal(s(e1), "1");
    assert.equal(e1.versionstamp, r1.versionstamp);
    const r2 = await atomic(db).set(["a"], b("2")).commit();
    assert.ok(r2.ok && r2.versionstamp > r1.versionstamp);
    const many = await db.getMany([["a"], ["b"]]);
    assert.deepEqual(many.map(s), ["2", null]);
    assert.ok((await atomic(db).delete(["a"]).delete(["never"]).commit()).ok);
    assert.equal((await db.get(["a"])).versionstamp, null);
  });

  t("commit versionstamps are monotonic", async (db) => {
    let last = "";
    for (let i = 0; i < 50; i++) {
      const r = await atomic(db).set(["k", i % 3], b(String(i))).commit();
      assert.ok(r.ok);
      assert.equal(r.versionstamp.length, 20);
      assert.ok(r.versionstamp > last, `${r.versionstamp} > ${last}`);
      last = r.versionstamp;
    }
  });

  t("list: key order, prefixes, bounds, reverse, limit", async (db) => {
    const keys: Key[] = [
      ["l", new Uint8Array([1])],
      ["l", "a"],
      ["l", "b"],
      ["l", "b", 1],
      ["l", 3n],
      ["l", -1.5],
      ["l", 0],
      ["l", 2],
      ["l", 10],
      ["l", false],
      ["l", true],
      ["m", "outside"],
    ];
    const op = atomic(db);
    for (const [i, k] of [...keys].reverse().entries()) op.set(k, b(String(i)));
    assert.ok((await op.commit()).ok);
    const all = await db.list({ prefix: ["l"] });
    assert.deepEqual(
      all.map((e) => e.key),
      keys.slice(0, -1),
      "bytes < string < bigint < number < boolean (Deno KV's order)",
    );
    assert.deepEqual(
      (await db.list({ prefix: ["l"] }, { reverse: true })).map((e) => e.key),
      keys.slice(0, -1).reverse(),
    );
    assert.deepEqual(
      (await db.list({ prefix: ["l"] }, { limit: 3 })).map((e) => e.key),
      keys.slice(0, 3),
    );
    assert.deepEqual(
      (await db.list({ prefix: ["l"] }, { limit: 2, reverse: true })).map((e) => e.key),
      [["l", true], ["l", false]],
    );
    assert.deepEqual(
      (await db.list({ prefix: ["l", "b"] })).map((e) => e.key),
      [["l", "b", 1]],
      "the prefix itself is excluded",
    );
    assert.deepEqual(
      (await db.list({ prefix: ["l"], start: ["l", 0], end: ["l", 10] })).map((e) => e.key),
      [["l", 0], ["l", 2]],
    );
    assert.deepEqual(
      (await db.list({ prefix: ["l"], start: ["l", 0], end: ["l", 10] }, { reverse: true })).map((
        e,
      ) => e.key),
      [["l", 2], ["l", 0]],
    );
    assert.deepEqual((await db.list({ start: ["l", 2], end: ["l", false] })).map((e) => e.key), [[
      "l",
      2,
    ], ["l", 10]]);
    assert.ok(all.every((e) => e.versionstamp !== null));
  });

  t("checks: a stale versionstamp fails the whole commit", async (db) => {
    const r = await atomic(db).set(["c"], b("x")).commit();
    assert.ok(r.ok);
    const stale = await atomic(db).check({ key: ["c"], versionstamp: null }).set(["other"], b("y"))
      .commit();
    assert.deepEqual(stale, { ok: false });
    assert.equal((await db.get(["other"])).value, null, "nothing of a failed commit is applied");
    const fresh = await atomic(db).check({ key: ["c"], versionstamp: r.versionstamp }).set(
      ["c"],
      b("z"),
    ).commit();
    assert.ok(fresh.ok);
  });

  t("checks under concurrent committers: exactly one wins each round", async (db) => {
    await atomic(db).set(["n"], b("0")).commit();
    const workers = 8, rounds = 20;
    let wins = 0;
    for (let round = 0; round < rounds; round++) {
      const seen = await db.get(["n"]);
      const rs = await Promise.all(
        Array.from(
          { length: workers },
          (_, w) =>
            atomic(db).check({ key: ["n"], versionstamp: seen.versionstamp }).set(
              ["n"],
              b(`${round}.${w}`),
            ).commit(),
        ),
      );
      const ok = rs.filter((r) => r.ok).length;
      assert.equal(ok, 1, `round ${round}: ${ok} winners`);
      wins += ok;
    }
    assert.equal(wins, rounds);
  });

  t("read-modify-write counters stay exact under contention", async (db) => {
    const incr = async () => {
      for (let attempt = 0; attempt < 1000; attempt++) {
        const e = await db.get(["ctr"]);
        const n = e.value === null ? 0 : Number(s(e));
        const r = await atomic(db).check({ key: ["ctr"], versionstamp: e.versionstamp }).set([
          "ctr",
        ], b(String(n + 1)))
          .commit();
        if (r.ok) return;
      }
      throw new Error("no progress");
    };
    await Promise.all(Array.from({ length: 40 }, incr));
    assert.equal(s(await db.get(["ctr"])), "40");
  });

  t("sums", async (db) => {
    await atomic(db).sum(["s"], 5n).commit();
    await Promise.all(Array.from({ length: 20 }, () => atomic(db).sum(["s"], 1n).commit()));
    await atomic(db).sum(["s"], 2n).sum(["s"], 3n).commit();
    assert.equal((await db.get(["s"])).value, 30n);
  });

  t("ordered appends sort in commit order", async (db) => {
    const order: string[] = [];
    for (let i = 0; i < 30; i++) {
      const op = atomic(db);
      const n = 1 + (i % 3);
      for (let j = 0; j < n; j++) {
        op.appendOrdered(["q"], b(`${i}.${j}`));
        order.push(`${i}.${j}`);
      }
      assert.ok((await op.commit()).ok);
    }
    // Concurrent appenders: the stored order is a total order consistent with each appender's own.
    await Promise.all(["x", "y", "z"].map(async (w) => {
      for (let i = 0; i < 20; i++) await atomic(db).appendOrdered(["p"], b(`${w}${i}`)).commit();
    }));
    const q = await db.list({ prefix: ["q"] });
    assert.deepEqual(q.map(s), order);
    assert.ok(q.every((e) => e.key.length === 2 && e.key[1] instanceof Uint8Array));
    const p = (await db.list({ prefix: ["p"] })).map((e) => s(e) as string);
    assert.equal(p.length, 60);
    for (const w of ["x", "y", "z"]) {
      assert.deepEqual(
        p.filter((v) => v[0] === w),
        Array.from({ length: 20 }, (_, i) => `${w}${i}`),
      );
    }
    // A check failure makes an append fail like any commit.
    const r = await atomic(db).check({ key: ["absent"], versionstamp: "00000000000000000001" })
      .appendOrdered(["q"], b("no"))
      .commit();
    assert.deepEqual(r, { ok: false });
    assert.equal((await db.list({ prefix: ["q"] })).length, order.length);
  });

  t("limits give named errors and write nothing", async (db) => {
    const L = db.limits;
    await assert.rejects(
      () => atomic(db).set(["big"], new Uint8Array(L.valueBytesMax + 1)).commit(),
      StorageLimitError,
    );
    await assert.rejects(
      () => atomic(db).set(["k".repeat(L.keyBytesMax)], b("v")).commit(),
      StorageLimitError,
    );
    const op = atomic(db);
    for (let i = 0; i <= L.mutationsMax; i++) op.set(["many", i], b("v"));
    await assert.rejects(() => op.commit(), StorageLimitError);
    assert.equal((await db.list({ prefix: ["many"] })).length, 0);
    assert.ok(
      (await atomic(db).set(["max"], new Uint8Array(L.valueBytesMax)).commit()).ok,
      "exactly the limit is fine",
    );
  });

  t("a commit exactly at commitBytesMax commits; one byte more is refused by name", async (db) => {
    const L = db.limits;
    // Long keys (they count twice for a set) and large values, under both commit limits.
    const pad = "k".repeat(Math.max(1, Math.min(1500, L.keyBytesMax - 40)));
    const key = (i: number): Key => ["fill", pad, i];
    const mutations: Mutation[] = [];
    const cost = () => commitCost([], mutations);
    for (let i = 0; i < L.mutationsMax; i++) {
      mutations.push({ type: "set", key: key(i), value: new Uint8Array(L.valueBytesMax) });
      const c = cost();
      if (c.bytes > L.commitBytesMax || c.keyBytes > L.commitKeysBytesMax) {
        mutations.pop();
        break;
      }
    }
    // Grow the last value up to the byte limit where the value limit allows.
    const last = mutations.at(-1) as { type: "set"; key: Key; value: Uint8Array };
    const room = L.commitBytesMax - cost().bytes;
    const size = Math.min(L.valueBytesMax, last.value.length + room);
    mutations[mutations.length - 1] = { ...last, value: new Uint8Array(size) };
    const exact = cost().bytes === L.commitBytesMax;
    assert.ok((await db.commit([], mutations)).ok, "what commitCost allows commits");
    if (exact) {
      const over = [...mutations];
      over.push({ type: "delete", key: ["fill", "x"] });
      await assert.rejects(() => db.commit([], over), StorageLimitError);
    }
    for (let i = 0; i < mutations.length; i += 100) {
      await db.commit(
        [],
        mutations.slice(i, i + 100).map((m) => ({
          type: "delete",
          key: (m as { key: Key }).key,
        })),
      );
    }
  });

  t("tenants are isolated", async (db) => {
    const t1 = subspace(db, ["tenant", 1]), t2 = subspace(db, ["tenant", 2]);
    await atomic(t1).set(["k"], b("one")).appendOrdered(["q"], b("q1")).commit();
    await atomic(t2).set(["k"], b("two")).commit();
    assert.equal(s(await t1.get(["k"])), "one");
    assert.equal(s(await t2.get(["k"])), "two");
    assert.deepEqual((await t2.list({ prefix: ["q"] })).length, 0);
    assert.deepEqual((await t1.list({ prefix: ["q"] })).map(s), ["q1"]);
    const seen = (await t1.list({ prefix: [] })).map(s);
    assert.ok(seen.includes("one") && !seen.includes("two"), "a tenant sees only its own keys");
  });

  t("watch on the same handle", async (db) => {
    const ctl = new AbortController();
    const it = db.watch([["w"], ["w2"]], ctl.signal)[Symbol.asyncIterator]();
    const first = await it.next();
    assert.deepEqual((first.value as Entry[]).map((e) => e.value), [null, null]);
    await atomic(db).set(["w"], b("1")).commit();
    const second = await it.next();
    assert.equal(s((second.value as Entry[])[0]!), "1");
    await atomic(db).set(["w2"], b("2")).commit();
    const third = await it.next();
    assert.equal(s((third.value as Entry[])[1]!), "2");
    ctl.abort();
    await it.return?.();
  });

  if (fixture.reopen) {
    const reopen = fixture.reopen;
    t("watch and conflicts across two handles", async (db) => {
      const other = await reopen(db);
      try {
        const ctl = new AbortController();
        const it = db.watch([["x"]], ctl.signal)[Symbol.asyncIterator]();
        await it.next();
        const r = await atomic(other).set(["x"], b("from the other handle")).commit();
        assert.ok(r.ok);
        const seen = await it.next();
        assert.equal(s((seen.value as Entry[])[0]!), "from the other handle");
        ctl.abort();
        await it.return?.();
        const e = await db.get(["x"]);
        await atomic(other).set(["x"], b("moved")).commit();
        assert.deepEqual(
          await atomic(db).check({ key: ["x"], versionstamp: e.versionstamp }).set(["x"], b("lost"))
            .commit(),
          {
            ok: false,
          },
        );
        await atomic(db).appendOrdered(["oq"], b("1")).commit();
        await atomic(other).appendOrdered(["oq"], b("2")).commit();
        await atomic(db).appendOrdered(["oq"], b("3")).commit();
        assert.deepEqual((await other.list({ prefix: ["oq"] })).map(s), ["1", "2", "3"]);
      } finally {
        await other.close();
      }
    });
  }
}
