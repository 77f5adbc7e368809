/**
 * {@linkcode Storage} on FoundationDB, through `npm:foundationdb` (which needs
 * the `libfdb_c` client library and a cluster file). This entry point is
 * separate (`@murmur/murmur/durable/foundationdb`) and loads the binding only
 * when {@linkcode FoundationDbStorage.open} runs, so users who never touch
 * FoundationDB never load it.
 *
 * Layout: keys are the tuple encoding of {@linkcode encodeKey} under an
 * optional prefix; every value is stored as `[10-byte versionstamp][kind][payload]`
 * (written with SET_VERSIONSTAMPED_VALUE), so that per-key versionstamps come
 * back with each read. Ordered appends are SET_VERSIONSTAMPED_KEY, so their
 * order is FoundationDB's commit order.
 *
 * @example
 * ```ts ignore
 * import { FoundationDbStorage } from "@murmur/murmur/durable/foundationdb";
 * await using db = await FoundationDbStorage.open({ clusterFile: "/etc/foundationdb/fdb.cluster" });
 * ```
 *
 * @module
 */

import {
  type Check,
  type CommitResult,
  type Entry,
  type Key,
  type ListOptions,
  type ListSelector,
  type Mutation,
  ORDER_STAMP_BYTES,
  type Storage,
  StorageError,
  type StorageLimits,
  type Value,
} from "./storage.ts";
import { checkCommitLimits } from "./limits.ts";
import { decodeKey, encodeKey } from "./keys.ts";
import { rangeOf } from "./memory_storage.ts";

/** Options of {@linkcode FoundationDbStorage.open}. */
export interface FoundationDbStorageOptions {
  /** Cluster file (default `$FDB_CLUSTER_FILE`, else the client's default location). */
  clusterFile?: string;
  /**
   * Client API version.
   *
   * @default 720
   */
  apiVersion?: number;
  /** Every key is stored under this prefix (default none). */
  prefix?: Key;
}

/** FoundationDB's limits, less the 11 bytes of the value header. */
export const FOUNDATIONDB_LIMITS: StorageLimits = Object.freeze({
  keyBytesMax: 10_000,
  valueBytesMax: 100_000 - 11,
  mutationsMax: 10_000,
  checksMax: 1_000,
  commitBytesMax: 9_000_000,
  commitKeysBytesMax: 9_000_000,
  listLimitMax: 10_000,
});

const STAMP = 10;
const KIND_BYTES = 0;
const KIND_COUNTER = 1;

/**
 * The stored form of a value: a placeholder for the versionstamp, the kind, the
 * payload, and the 4-byte little-endian offset of the placeholder
 * (SET_VERSIONSTAMPED_VALUE's parameter form).
 *
 * @example
 * ```ts
 * import { packValue } from "@murmur/murmur/durable/foundationdb";
 * console.log(packValue(new Uint8Array([7])).length); // 16
 * ```
 */
export function packValue(value: Value): Uint8Array {
  const payload = typeof value === "bigint" ? counterBytes(value) : value;
  const out = new Uint8Array(STAMP + 1 + payload.length + 4);
  out[STAMP] = typeof value === "bigint" ? KIND_COUNTER : KIND_BYTES;
  out.set(payload, STAMP + 1);
  new DataView(out.buffer).setUint32(out.length - 4, 0, true);
  return out;
}

/**
 * Reads a stored value back: `{ versionstamp, value }`.
 *
 * @example
 * ```ts
 * import { unpackValue } from "@murmur/murmur/durable/foundationdb";
 * const stored = new Uint8Array([0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 42]);
 * console.log(unpackValue(stored)); // { versionstamp: "00000000000000000001", value: Uint8Array(1) [ 42 ] }
 * ```
 */
export function unpackValue(stored: Uint8Array): { versionstamp: string; value: Value } {
  if (stored.length < STAMP + 1) throw new StorageError("stored value is shorter than its header");
  const versionstamp = Array.from(stored.subarray(0, STAMP), (b) => b.toString(16).padStart(2, "0"))
    .join("");
  const payload = stored.slice(STAMP + 1);
  if (stored[STAMP] === KIND_COUNTER) {
    return { versionstamp, value: new DataView(payload.buffer).getBigUint64(0, true) };
  }
  return { versionstamp, value: payload };
}

function counterBytes(n: bigint): Uint8Array {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, BigInt.asUintN(64, n), true);
  return b;
}

/**
 * The key form SET_VERSIONSTAMPED_KEY expects for an ordered append: the encoded
 * prefix, the {@linkcode OrderStamp} tag, a 10-byte placeholder, the 2-byte order
 * within the commit, and the 4-byte little-endian offset of the placeholder.
 *
 * @example
 * ```ts
 * import { encodeKey } from "@murmur/murmur/durable";
 * import { packOrderedKey } from "@murmur/murmur/durable/foundationdb";
 * console.log(packOrderedKey(encodeKey(["q"]), 0).length); // 4 + 1 + 12 + 4
 * ```
 */
export function packOrderedKey(prefixBytes: Uint8Array, order: number): Uint8Array {
  const out = new Uint8Array(prefixBytes.length + 1 + ORDER_STAMP_BYTES + 4);
  out.set(prefixBytes);
  out[prefixBytes.length] = 0x33;
  const v = new DataView(out.buffer);
  v.setUint16(prefixBytes.length + 1 + STAMP, order);
  v.setUint32(out.length - 4, prefixBytes.length + 1, true);
  return out;
}

// The part of npm:foundationdb this backend uses, typed locally so that type
// checking never needs the package.
interface FdbTransaction {
  get(key: Uint8Array): Promise<Uint8Array | undefined>;
  getRangeAll(
    start: Uint8Array,
    end: Uint8Array,
    opts?: { limit?: number; reverse?: boolean },
  ): Promise<[Uint8Array, Uint8Array][]>;
  clear(key: Uint8Array): void;
  setVersionstampedValueRaw(key: Uint8Array, value: Uint8Array): void;
  setVersionstampedKeyRaw(keyBytes: Uint8Array, value: Uint8Array): void;
  getVersionstamp(): { promise: Promise<Uint8Array> };
  watch(key: Uint8Array): { promise: Promise<boolean>; cancel(): void };
}
interface FdbDatabase {
  doTn<T>(body: (tn: FdbTransaction) => Promise<T>): Promise<T>;
  close(): void;
}
interface FdbModule {
  setAPIVersion(version: number): void;
  open(clusterFile?: string): FdbDatabase;
}

let apiVersionSet: number | undefined;

/**
 * FoundationDB as murmur storage.
 *
 * @example
 * ```ts ignore
 * import { FoundationDbStorage } from "@murmur/murmur/durable/foundationdb";
 * import { atomic } from "@murmur/murmur/durable";
 * await using db = await FoundationDbStorage.open({ prefix: ["my-app"] });
 * await atomic(db).sum(["visits"], 1n).commit();
 * ```
 */
export class FoundationDbStorage implements Storage {
  readonly limits: StorageLimits = FOUNDATIONDB_LIMITS;
  readonly #db: FdbDatabase;
  readonly #prefix: Uint8Array;
  #closed = false;
  readonly #closing = new AbortController();

  private constructor(db: FdbDatabase, prefix: Key) {
    this.#db = db;
    this.#prefix = prefix.length > 0 ? encodeKey(prefix) : new Uint8Array(0);
  }

  /**
   * Loads the binding and opens the database. Fails with a
   * {@linkcode StorageError} that says what is missing when `libfdb_c` or the
   * cluster file is not there.
   */
  static async open(options: FoundationDbStorageOptions = {}): Promise<FoundationDbStorage> {
    const clusterFile = options.clusterFile ?? Deno.env.get("FDB_CLUSTER_FILE");
    if (clusterFile !== undefined) {
      try {
        await Deno.stat(clusterFile);
      } catch (e) {
        throw new StorageError(`FoundationDB cluster file not found: ${clusterFile}`, { cause: e });
      }
    }
    let fdb: FdbModule;
    try {
      fdb = (await import("foundationdb")) as unknown as FdbModule;
    } catch (e) {
      throw new StorageError(
        "could not load the FoundationDB client: install libfdb_c (the FoundationDB client package) " +
          `and allow FFI (--allow-ffi); the binding said: ${(e as Error).message}`,
        { cause: e },
      );
    }
    const version = options.apiVersion ?? 720;
    if (apiVersionSet === undefined) {
      fdb.setAPIVersion(version);
      apiVersionSet = version;
    } else if (apiVersionSet !== version) {
      throw new StorageError(
        `the FoundationDB API version is already ${apiVersionSet} in this process`,
      );
    }
    let db: FdbDatabase;
    try {
      db = fdb.open(clusterFile);
    } catch (e) {
      throw new StorageError(`could not open FoundationDB: ${(e as Error).message}`, { cause: e });
    }
    return new FoundationDbStorage(db, options.prefix ?? []);
  }

  #key(key: Key): Uint8Array {
    const k = encodeKey(key);
    if (this.#prefix.length === 0) return k;
    const out = new Uint8Array(this.#prefix.length + k.length);
    out.set(this.#prefix);
    out.set(k, this.#prefix.length);
    return out;
  }

  #unkey(bytes: Uint8Array): Key {
    return decodeKey(bytes.subarray(this.#prefix.length));
  }

  async #tn<T>(body: (tn: FdbTransaction) => Promise<T>): Promise<T> {
    if (this.#closed) throw new StorageError("storage is closed");
    try {
      return await this.#db.doTn(body);
    } catch (e) {
      if (e instanceof StorageError || e instanceof TypeError || e instanceof RangeError) throw e;
      throw new StorageError(`FoundationDB: ${(e as Error).message}`, { cause: e });
    }
  }

  #entry(key: Key, stored: Uint8Array | undefined): Entry {
    if (stored === undefined) return { key, value: null, versionstamp: null };
    const { versionstamp, value } = unpackValue(stored);
    return { key, value, versionstamp };
  }

  /** Reads one key. */
  get(key: Key): Promise<Entry> {
    return this.#tn(async (tn) => this.#entry(key, await tn.get(this.#key(key))));
  }

  /** Reads several keys in one transaction. */
  getMany(keys: readonly Key[]): Promise<Entry[]> {
    return this.#tn(async (tn) => {
      const values = await Promise.all(keys.map((k) => tn.get(this.#key(k))));
      return keys.map((k, i) => this.#entry(k, values[i]));
    });
  }

  /** Reads a range in one transaction. */
  list(selector: ListSelector, options: ListOptions = {}): Promise<Entry[]> {
    const [lo, hi] = rangeOf(selector);
    const limit = Math.min(options.limit ?? this.limits.listLimitMax, this.limits.listLimitMax);
    return this.#tn(async (tn) => {
      const rows = await tn.getRangeAll(this.#withPrefix(lo), this.#withPrefix(hi), {
        limit,
        reverse: options.reverse ?? false,
      });
      return rows.map(([k, v]) => this.#entry(this.#unkey(k), v));
    });
  }

  #withPrefix(b: Uint8Array): Uint8Array {
    const out = new Uint8Array(this.#prefix.length + b.length);
    out.set(this.#prefix);
    out.set(b, this.#prefix.length);
    return out;
  }

  /** Checks, then mutates, in one transaction (retried by the client on conflicts). */
  async commit(checks: readonly Check[], mutations: readonly Mutation[]): Promise<CommitResult> {
    checkCommitLimits(this.limits, checks, mutations);
    let stamp: Promise<Uint8Array> | undefined;
    const ok = await this.#tn(async (tn) => {
      const current = await Promise.all(checks.map((c) => tn.get(this.#key(c.key))));
      for (const [i, c] of checks.entries()) {
        const have = current[i] === undefined ? null : unpackValue(current[i]!).versionstamp;
        if (have !== c.versionstamp) return false;
      }
      // Sums are read-modify-write here, so that counters carry versionstamps too.
      const sums = new Map<string, { key: Uint8Array; value: bigint }>();
      for (const m of mutations) {
        if (m.type !== "sum") continue;
        const k = this.#key(m.key);
        const id = k.join(",");
        let cur = sums.get(id);
        if (cur === undefined) {
          const stored = await tn.get(k);
          const old = stored === undefined ? 0n : unpackValue(stored).value;
          if (typeof old !== "bigint") {
            throw new StorageError("sum on a key that does not hold a counter");
          }
          sums.set(id, cur = { key: k, value: old });
        }
        cur.value = BigInt.asUintN(64, cur.value + m.value);
      }
      let order = 0;
      for (const m of mutations) {
        if (m.type === "set") tn.setVersionstampedValueRaw(this.#key(m.key), packValue(m.value));
        else if (m.type === "delete") tn.clear(this.#key(m.key));
        else if (m.type === "appendOrdered") {
          tn.setVersionstampedKeyRaw(
            packOrderedKey(this.#key(m.prefix), order++),
            packValue(m.value),
          );
        }
      }
      for (const s of sums.values()) tn.setVersionstampedValueRaw(s.key, packValue(s.value));
      stamp = tn.getVersionstamp().promise;
      return true;
    });
    if (!ok || stamp === undefined) return { ok: false };
    const vs = await stamp;
    return {
      ok: true,
      versionstamp: Array.from(vs.subarray(0, STAMP), (b) => b.toString(16).padStart(2, "0")).join(
        "",
      ),
    };
  }

  /** Watches keys with FoundationDB watches. */
  async *watch(keys: readonly Key[], signal?: AbortSignal): AsyncIterable<Entry[]> {
    const stop = AbortSignal.any([this.#closing.signal, ...(signal ? [signal] : [])]);
    let last: string | undefined;
    while (!stop.aborted) {
      let watches: { promise: Promise<boolean>; cancel(): void }[] = [];
      const entries = await this.#tn(async (tn) => {
        const values = await Promise.all(keys.map((k) => tn.get(this.#key(k))));
        watches = keys.map((k) => tn.watch(this.#key(k)));
        return keys.map((k, i) => this.#entry(k, values[i]));
      });
      const stampNow = entries.map((e) => e.versionstamp ?? "-").join(",");
      if (stampNow !== last) {
        last = stampNow;
        yield entries;
      }
      const aborted = new Promise<void>((r) =>
        stop.addEventListener("abort", () => r(), { once: true })
      );
      await Promise.race([...watches.map((w) => w.promise.catch(() => false)), aborted]);
      for (const w of watches) w.cancel();
    }
  }

  /** Closes the database handle; pending watches end. */
  close(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    this.#closing.abort();
    this.#closed = true;
    this.#db.close();
    return Promise.resolve();
  }

  /** Same as `close()`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
