/**
 * Helpers over any {@linkcode Storage}: a chainable atomic builder in the
 * style of `Deno.AtomicOperation`, and a subspace (a view under a key prefix).
 *
 * @module
 */

import type {
  Check,
  CommitResult,
  Entry,
  Key,
  ListSelector,
  Mutation,
  Storage,
} from "./storage.ts";

/**
 * A chainable builder over {@linkcode Storage.commit}, in the style of
 * `Deno.AtomicOperation`.
 *
 * @example
 * ```ts
 * import { atomic, MemoryStorage } from "@murmur/murmur/durable";
 * await using db = new MemoryStorage();
 * await atomic(db).sum(["hits"], 1n).sum(["hits"], 2n).commit();
 * console.log((await db.get(["hits"])).value); // 3n
 * ```
 */
export class AtomicOperation {
  readonly #storage: Storage;
  readonly #checks: Check[] = [];
  readonly #mutations: Mutation[] = [];

  /** Starts an empty operation on `storage`. */
  constructor(storage: Storage) {
    this.#storage = storage;
  }

  /** Adds preconditions. */
  check(...checks: Check[]): this {
    this.#checks.push(...checks);
    return this;
  }

  /** Writes bytes. */
  set(key: Key, value: Uint8Array): this {
    this.#mutations.push({ type: "set", key, value });
    return this;
  }

  /** Deletes a key. */
  delete(key: Key): this {
    this.#mutations.push({ type: "delete", key });
    return this;
  }

  /** Adds to a counter. */
  sum(key: Key, value: bigint): this {
    this.#mutations.push({ type: "sum", key, value });
    return this;
  }

  /** Appends under `prefix` in commit order. */
  appendOrdered(prefix: Key, value: Uint8Array): this {
    this.#mutations.push({ type: "appendOrdered", prefix, value });
    return this;
  }

  /** Adds a raw mutation. */
  mutate(...mutations: Mutation[]): this {
    this.#mutations.push(...mutations);
    return this;
  }

  /** Commits. */
  commit(): Promise<CommitResult> {
    return this.#storage.commit(this.#checks, this.#mutations);
  }
}

/**
 * Starts an {@linkcode AtomicOperation} on `storage`.
 *
 * @example
 * ```ts
 * import { atomic, MemoryStorage } from "@murmur/murmur/durable";
 * await using db = new MemoryStorage();
 * console.log((await atomic(db).delete(["nothing"]).commit()).ok); // true
 * ```
 */
export function atomic(storage: Storage): AtomicOperation {
  return new AtomicOperation(storage);
}

/**
 * A view of `storage` confined to keys under `prefix`: a tenant. Keys given to
 * and returned by the view do not include the prefix.
 *
 * @example
 * ```ts
 * import { MemoryStorage, subspace } from "@murmur/murmur/durable";
 * await using db = new MemoryStorage();
 * const t1 = subspace(db, ["tenant", 1]);
 * await t1.commit([], [{ type: "set", key: ["k"], value: new Uint8Array([1]) }]);
 * console.log((await db.get(["tenant", 1, "k"])).value); // Uint8Array(1) [ 1 ]
 * ```
 */
export function subspace(storage: Storage, prefix: Key): Storage {
  if (!Array.isArray(prefix) || prefix.length === 0) {
    throw new TypeError("prefix must be a non-empty key");
  }
  const add = (k: Key): Key => [...prefix, ...k];
  const strip = (e: Entry): Entry => ({ ...e, key: e.key.slice(prefix.length) });
  return {
    limits: storage.limits,
    get: async (key) => strip(await storage.get(add(key))),
    getMany: async (keys) => (await storage.getMany(keys.map(add))).map(strip),
    list: async (sel, opts) => {
      const inner: ListSelector = { prefix: add(sel.prefix ?? []) };
      if (sel.start) inner.start = add(sel.start);
      if (sel.end) inner.end = add(sel.end);
      return (await storage.list(inner, opts)).map(strip);
    },
    commit: (checks, mutations) =>
      storage.commit(
        checks.map((c) => ({ key: add(c.key), versionstamp: c.versionstamp })),
        mutations.map((m) =>
          m.type === "appendOrdered" ? { ...m, prefix: add(m.prefix) } : { ...m, key: add(m.key) }
        ),
      ),
    watch: (keys, signal) => {
      const it = storage.watch(keys.map(add), signal);
      return (async function* () {
        for await (const entries of it) yield entries.map(strip);
      })();
    },
    close: () => Promise.resolve(),
    [Symbol.asyncDispose]: () => Promise.resolve(),
  };
}
