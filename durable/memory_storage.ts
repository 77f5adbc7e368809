/**
 * An in-process {@linkcode Storage}, with watches. Fast, and the reference the
 * other backends are compared with; its data lives as long as the object.
 *
 * @module
 */

import { SkipList } from "./_skiplist.ts";
import {
  type Check,
  type CommitResult,
  type Entry,
  type Key,
  type ListOptions,
  type ListSelector,
  type Mutation,
  ORDER_STAMP_BYTES,
  OrderStamp,
  type Storage,
  StorageError,
  type StorageLimits,
  type Value,
} from "./storage.ts";
import { checkCommitLimits, PORTABLE_LIMITS } from "./limits.ts";
import { compareBytes, decodeKey, encodeKey, versionstampOf } from "./keys.ts";

interface Cell {
  key: Uint8Array;
  value: Value;
  versionstamp: string;
}

/** Options of {@linkcode MemoryStorage}. */
export interface MemoryStorageOptions {
  /** Limits (default {@linkcode PORTABLE_LIMITS}, those of Deno KV, so that code stays portable). */
  limits?: Partial<StorageLimits>;
}

const hex = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");

/**
 * Storage in memory: sorted keys, one versionstamp per commit, watches.
 *
 * @example
 * ```ts
 * import { MemoryStorage } from "@murmur/murmur/durable";
 * await using db = new MemoryStorage();
 * await db.commit([], [{ type: "sum", key: ["n"], value: 5n }]);
 * console.log((await db.get(["n"])).value); // 5n
 * ```
 */
export class MemoryStorage implements Storage {
  readonly limits: StorageLimits;
  readonly #cells = new SkipList<Cell>();
  #commit = 0n;
  #closed = false;
  readonly #watchers = new Set<{ keys: Set<string>; wake: () => void }>();

  /** Creates an empty storage. */
  constructor(options: MemoryStorageOptions = {}) {
    this.limits = { ...PORTABLE_LIMITS, ...options.limits };
  }

  #open(): void {
    if (this.#closed) throw new StorageError("storage is closed");
  }

  #entry(key: Key): Entry {
    const c = this.#cells.get(encodeKey(key));
    return c === undefined
      ? { key, value: null, versionstamp: null }
      : { key, value: copy(c.value), versionstamp: c.versionstamp };
  }

  /** Reads one key. */
  get(key: Key): Promise<Entry> {
    try {
      this.#open();
      return Promise.resolve(this.#entry(key));
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /** Reads several keys. */
  getMany(keys: readonly Key[]): Promise<Entry[]> {
    try {
      this.#open();
      return Promise.resolve(keys.map((k) => this.#entry(k)));
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /** Reads a range. */
  list(selector: ListSelector, options: ListOptions = {}): Promise<Entry[]> {
    try {
      this.#open();
      const [lo, hi] = rangeOf(selector);
      const limit = Math.min(options.limit ?? this.limits.listLimitMax, this.limits.listLimitMax);
      const rows = this.#cells.range(lo, hi, limit, options.reverse ?? false);
      return Promise.resolve(rows.map(([, c]) => toEntry(c)));
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /** Commits atomically. */
  commit(checks: readonly Check[], mutations: readonly Mutation[]): Promise<CommitResult> {
    try {
      this.#open();
      checkCommitLimits(this.limits, checks, mutations);
      for (const c of checks) {
        if ((this.#cells.get(encodeKey(c.key))?.versionstamp ?? null) !== c.versionstamp) {
          return Promise.resolve({ ok: false });
        }
      }
      // Validate before touching anything: a commit applies whole or not at all.
      for (const m of mutations) {
        if (m.type !== "sum") continue;
        const old = this.#cells.get(encodeKey(m.key))?.value;
        if (old !== undefined && typeof old !== "bigint") {
          throw new StorageError("sum on a key that does not hold a counter");
        }
      }
      const versionstamp = versionstampOf(++this.#commit);
      const touched = new Set<string>();
      let seq = 0;
      for (const m of mutations) {
        let k: Uint8Array;
        if (m.type === "appendOrdered") {
          const stamp = new OrderStamp(ORDER_STAMP_BYTES);
          const v = new DataView(stamp.buffer);
          v.setBigUint64(2, this.#commit); // bytes 0-9: the commit, 10-11: order within it
          v.setUint16(10, seq++);
          k = encodeKey([...m.prefix, stamp]);
        } else k = encodeKey(m.key);
        if (this.#watchers.size > 0) touched.add(hex(k));
        if (m.type === "delete") {
          this.#cells.delete(k);
          continue;
        }
        const existing = this.#cells.get(k);
        let value: Value;
        if (m.type === "sum") {
          const old = existing?.value as bigint | undefined;
          value = BigInt.asUintN(64, (old ?? 0n) + m.value);
        } else value = m.value.slice();
        if (existing) {
          existing.value = value;
          existing.versionstamp = versionstamp;
        } else this.#cells.set(k, { key: k, value, versionstamp });
      }
      for (const w of this.#watchers) {
        for (const id of touched) {
          if (w.keys.has(id)) {
            w.wake();
            break;
          }
        }
      }
      return Promise.resolve({ ok: true, versionstamp });
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /** Watches keys: yields now and after each change. */
  async *watch(keys: readonly Key[], signal?: AbortSignal): AsyncIterable<Entry[]> {
    this.#open();
    const ids = new Set(keys.map((k) => hex(encodeKey(k))));
    let dirty = true;
    let wake: (() => void) | undefined;
    const w = {
      keys: ids,
      wake: () => {
        dirty = true;
        wake?.();
      },
    };
    const onAbort = () => wake?.();
    signal?.addEventListener("abort", onAbort);
    this.#watchers.add(w);
    try {
      while (!this.#closed && !signal?.aborted) {
        if (dirty) {
          dirty = false;
          yield keys.map((k) => this.#entry(k));
          continue;
        }
        await new Promise<void>((r) => (wake = r));
        wake = undefined;
      }
    } finally {
      this.#watchers.delete(w);
      signal?.removeEventListener("abort", onAbort);
    }
  }

  /** Closes: reads and commits fail, watches end. */
  close(): Promise<void> {
    this.#closed = true;
    for (const w of this.#watchers) w.wake();
    return Promise.resolve();
  }

  /** Same as `close()`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

function copy(v: Value): Value {
  return typeof v === "bigint" ? v : v.slice();
}

function toEntry(c: Cell): Entry {
  return { key: decodeKey(c.key), value: copy(c.value), versionstamp: c.versionstamp };
}

/**
 * The byte range `[lo, hi)` of a selector over encoded keys.
 *
 * @example
 * ```ts
 * import { rangeOf } from "@murmur/murmur/durable";
 * const [lo, hi] = rangeOf({ prefix: ["q"] });
 * console.log(lo.length, hi.length); // 4 4
 * ```
 */
export function rangeOf(selector: ListSelector): [Uint8Array, Uint8Array] {
  const prefix = encodeKey(selector.prefix ?? []);
  // Children of the prefix: after prefix+0x00, before prefix+0xff.
  let lo = prefix.length === 0 ? new Uint8Array(0) : concat(prefix, [0x00]);
  let hi = concat(prefix, [0xff]);
  if (selector.start) {
    const s = encodeKey(selector.start);
    if (compareBytes(s, lo) > 0) lo = s;
  }
  if (selector.end) {
    const e = encodeKey(selector.end);
    if (compareBytes(e, hi) < 0) hi = e;
  }
  return [lo, hi];
}

function concat(a: Uint8Array, b: number[]): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}
