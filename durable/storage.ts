/**
 * The `Storage` interface: what a durable server needs from a database, kept
 * small enough that Deno KV and FoundationDB both implement it well. Modelled on
 * denokv's `Database`: snapshot reads of keys and ranges with versionstamps, one
 * atomic commit with per-key versionstamp checks, set / delete / sum mutations
 * and an ordered append whose key sorts by commit order, watches, close.
 *
 * Guarantees every backend gives (and {@linkcode testStorage} checks):
 * - a commit is all or nothing, and fails (`{ ok: false }`) without effect when
 *   any check fails; a successful commit gets a versionstamp greater than every
 *   earlier one, and every key it writes carries that versionstamp;
 * - reads see only committed data; `list` returns keys in key order;
 * - `appendOrdered` keys sort in commit order (FIFO across all writers);
 * - `watch` yields the current entries and then again after each change.
 *
 * @module
 */

import { MurmurError } from "../base/errors.ts";

/** One part of a key. Parts of different types order as: bytes < string < bigint < number < boolean. */
export type KeyPart = Uint8Array | string | number | bigint | boolean;
/** A key: a tuple of parts. A key is a prefix of every longer key that starts with it. */
export type Key = readonly KeyPart[];
/** A stored value: opaque bytes, or a 64-bit unsigned counter written with `sum`. */
export type Value = Uint8Array | bigint;

/** A key with its value and the versionstamp of the commit that wrote it (both null when absent). */
export interface Entry {
  /** The key. */
  readonly key: Key;
  /** The value, or null when absent. */
  readonly value: Value | null;
  /** 20 hex digits; null when absent. */
  readonly versionstamp: string | null;
}

/** A range: every key under `prefix`, narrowed by `start` (inclusive) and `end` (exclusive). */
export interface ListSelector {
  /** Keys that start with this prefix (the prefix itself excluded). */
  prefix?: Key;
  /** First key (inclusive). */
  start?: Key;
  /** Key after the last (exclusive). */
  end?: Key;
}

/** Options of {@linkcode Storage.list}. */
export interface ListOptions {
  /** At most this many entries (default and maximum: the backend's `listLimitMax`). */
  limit?: number;
  /** Descending key order. */
  reverse?: boolean;
}

/** A commit precondition: the key's current versionstamp must be this (null: absent). */
export interface Check {
  /** The key. */
  key: Key;
  /** The expected versionstamp, or null for "absent". */
  versionstamp: string | null;
}

/** One write of a commit. */
export type Mutation =
  /** Writes bytes. */
  | { type: "set"; key: Key; value: Uint8Array }
  /** Removes a key (no error when absent). */
  | { type: "delete"; key: Key }
  /** Adds to a 64-bit unsigned counter (absent counts as 0; wraps at 2^64). */
  | { type: "sum"; key: Key; value: bigint }
  /**
   * Writes `value` at `[...prefix, stamp]` where `stamp` is a `Uint8Array` that
   * sorts after every stamp of earlier commits (and of earlier appends in this one).
   */
  | { type: "appendOrdered"; prefix: Key; value: Uint8Array };

/** Result of a commit. */
export type CommitResult = { ok: true; versionstamp: string } | { ok: false };

/** The limits of a backend. Past them, a commit or read fails with {@linkcode StorageLimitError}. */
export interface StorageLimits {
  /** Largest encoded key. */
  keyBytesMax: number;
  /** Largest value. */
  valueBytesMax: number;
  /** Mutations per commit. */
  mutationsMax: number;
  /** Checks per commit. */
  checksMax: number;
  /** Cost of one commit in bytes, as {@linkcode commitCost} counts it. */
  commitBytesMax: number;
  /** Bytes of all mutation keys of one commit, as {@linkcode commitCost} counts them. */
  commitKeysBytesMax: number;
  /** Entries per `list` call. */
  listLimitMax: number;
}

/**
 * A database as durable servers use it. Implement it to add a backend; run
 * {@linkcode testStorage} on your implementation.
 *
 * @example
 * ```ts
 * import { atomic, MemoryStorage } from "@murmur/murmur/durable";
 * await using db = new MemoryStorage();
 * const r = await atomic(db).check({ key: ["k"], versionstamp: null })
 *   .set(["k"], new TextEncoder().encode("v")).commit();
 * console.log(r.ok, (await db.get(["k"])).versionstamp !== null); // true true
 * ```
 */
export interface Storage extends AsyncDisposable {
  /** The backend's limits. */
  readonly limits: StorageLimits;
  /** Reads one key. */
  get(key: Key): Promise<Entry>;
  /** Reads several keys in one snapshot. */
  getMany(keys: readonly Key[]): Promise<Entry[]>;
  /** Reads a range in one snapshot, in key order (or reverse). */
  list(selector: ListSelector, options?: ListOptions): Promise<Entry[]>;
  /** Applies `mutations` atomically if every check holds. */
  commit(checks: readonly Check[], mutations: readonly Mutation[]): Promise<CommitResult>;
  /**
   * Yields the entries of `keys` now, and again after any of them changes
   * (intermediate states may be skipped). Ends when `signal` aborts or the storage closes.
   */
  watch(keys: readonly Key[], signal?: AbortSignal): AsyncIterable<Entry[]>;
  /** Closes the storage; pending watches end. */
  close(): Promise<void>;
}

/**
 * A storage limit was exceeded: key or value too large, too many mutations or
 * checks, a commit too large. Nothing was written.
 *
 * @example
 * ```ts
 * import { StorageLimitError } from "@murmur/murmur/durable";
 * console.log(new StorageLimitError("valueBytesMax", 70000, 65536).message);
 * ```
 */
export class StorageLimitError extends MurmurError {
  /** Which limit. */
  readonly limit: keyof StorageLimits;
  /** The size or count that was refused. */
  readonly actual: number;
  /** The limit in force. */
  readonly max: number;
  /** Creates the error; `detail` says what was being written. */
  constructor(limit: keyof StorageLimits, actual: number, max: number, detail?: string) {
    super(
      `${limit} exceeded: ${actual} > ${max} (by ${actual - max})${detail ? `: ${detail}` : ""}`,
    );
    this.limit = limit;
    this.actual = actual;
    this.max = max;
  }
}

/**
 * The storage failed or was closed; `cause` holds the backend's error.
 *
 * @example
 * ```ts
 * import { StorageError } from "@murmur/murmur/durable";
 * console.log(new StorageError("closed").name); // StorageError
 * ```
 */
export class StorageError extends MurmurError {}

/** Bytes of the order part an ordered append adds to its prefix, at most. */
export const APPEND_STAMP_BYTES_MAX = 18;

/** Length of an {@linkcode OrderStamp}: a 10-byte commit versionstamp and a 2-byte order within the commit. */
export const ORDER_STAMP_BYTES = 12;

/**
 * The last key part written by `appendOrdered` in the memory and FoundationDB
 * backends: fixed-width bytes that sort in commit order. Pass it back as
 * received (for example to delete the entry).
 *
 * @example
 * ```ts
 * import { decodeKey, encodeKey, OrderStamp } from "@murmur/murmur/durable";
 * const k = decodeKey(encodeKey(["q", new OrderStamp(12)]));
 * console.log(k[1] instanceof OrderStamp); // true
 * ```
 */
export class OrderStamp extends Uint8Array {}
