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

/** Limits that every built-in backend can honour (those of Deno KV). */
export const PORTABLE_LIMITS: StorageLimits = Object.freeze({
  keyBytesMax: 2048,
  valueBytesMax: 65536,
  mutationsMax: 1000,
  checksMax: 100,
  commitBytesMax: 800 * 1024,
  commitKeysBytesMax: 80 * 1024,
  listLimitMax: 1000,
});

/** Bytes of the order part an ordered append adds to its prefix, at most. */
export const APPEND_STAMP_BYTES_MAX = 18;

// ------------------------------------------------------------------ key codec

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

const enc = new TextEncoder();
const dec = new TextDecoder();

function pushEscaped(out: number[], bytes: Uint8Array): void {
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i]!;
    out.push(b);
    if (b === 0) out.push(0xff);
  }
  out.push(0);
}

/**
 * A string part: ASCII directly, else through UTF-8 (the same bytes either way).
 * Keys are mostly short ASCII names, and TextEncoder's call costs more than the
 * loop for them.
 */
function pushString(out: number[], s: string): void {
  for (let i = 0; i < s.length; i++) {
    if (s.charCodeAt(i) >= 0x80) {
      pushEscaped(out, enc.encode(s));
      return;
    }
  }
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    out.push(c);
    if (c === 0) out.push(0xff);
  }
  out.push(0);
}

/** Scratch space for number parts (encodeKey is synchronous). */
const eight = new Uint8Array(8);
const eightView = new DataView(eight.buffer);

/**
 * Encodes a key into bytes whose byte order is the key order (a tuple encoding
 * in the style of FoundationDB's). Used by the memory and FoundationDB backends.
 *
 * @example
 * ```ts
 * import { encodeKey } from "@murmur/murmur/durable";
 * console.log(encodeKey(["a", 1]).length > 0); // true
 * ```
 */
export function encodeKey(key: Key): Uint8Array {
  if (!Array.isArray(key)) throw new TypeError("a key must be an array of parts");
  const out: number[] = [];
  for (const part of key) {
    if (part instanceof OrderStamp) {
      if (part.length !== ORDER_STAMP_BYTES) {
        throw new TypeError(`an OrderStamp has ${ORDER_STAMP_BYTES} bytes`);
      }
      out.push(0x33);
      for (let i = 0; i < part.length; i++) out.push(part[i]!);
    } else if (part instanceof Uint8Array) {
      out.push(0x01);
      pushEscaped(out, part);
    } else if (typeof part === "string") {
      out.push(0x02);
      pushString(out, part);
    } else if (typeof part === "number") {
      if (Number.isNaN(part)) throw new TypeError("NaN is not a valid key part");
      out.push(0x21);
      eightView.setFloat64(0, part);
      const flip = eight[0]! & 0x80 ? 0xff : 0;
      out.push(eight[0]! ^ (flip | 0x80));
      for (let i = 1; i < 8; i++) out.push(eight[i]! ^ flip);
    } else if (typeof part === "bigint") {
      if (part < -(2n ** 63n) || part >= 2n ** 63n) {
        throw new RangeError("bigint key parts must fit in 64 bits");
      }
      out.push(0x20);
      const b = new Uint8Array(8);
      new DataView(b.buffer).setBigUint64(0, BigInt.asUintN(64, part) ^ (1n << 63n));
      out.push(...b);
    } else if (typeof part === "boolean") {
      out.push(part ? 0x27 : 0x26);
    } else {
      throw new TypeError(`invalid key part of type ${typeof part}`);
    }
  }
  return Uint8Array.from(out);
}

/**
 * Decodes bytes made by {@linkcode encodeKey}.
 *
 * @example
 * ```ts
 * import { decodeKey, encodeKey } from "@murmur/murmur/durable";
 * console.log(decodeKey(encodeKey(["a", 1, true]))); // [ "a", 1, true ]
 * ```
 */
export function decodeKey(bytes: Uint8Array): KeyPart[] {
  const parts: KeyPart[] = [];
  let i = 0;
  const unescape = (): Uint8Array => {
    const out: number[] = [];
    for (;;) {
      if (i >= bytes.length) throw new StorageError("truncated key");
      const b = bytes[i++]!;
      if (b === 0) {
        if (bytes[i] === 0xff) {
          out.push(0);
          i++;
        } else return Uint8Array.from(out);
      } else out.push(b);
    }
  };
  while (i < bytes.length) {
    const tag = bytes[i++];
    if (tag === 0x01) parts.push(unescape());
    else if (tag === 0x02) parts.push(dec.decode(unescape()));
    else if (tag === 0x21) {
      const b = bytes.slice(i, i + 8);
      i += 8;
      if (b[0]! & 0x80) b[0] = b[0]! ^ 0x80;
      else for (let j = 0; j < 8; j++) b[j] = b[j]! ^ 0xff;
      parts.push(new DataView(b.buffer).getFloat64(0));
    } else if (tag === 0x20) {
      const v = new DataView(bytes.buffer, bytes.byteOffset + i, 8).getBigUint64(0) ^ (1n << 63n);
      i += 8;
      parts.push(BigInt.asIntN(64, v));
    } else if (tag === 0x33) {
      if (i + ORDER_STAMP_BYTES > bytes.length) throw new StorageError("truncated order stamp");
      parts.push(new OrderStamp(bytes.slice(i, i + ORDER_STAMP_BYTES)));
      i += ORDER_STAMP_BYTES;
    } else if (tag === 0x26) parts.push(false);
    else if (tag === 0x27) parts.push(true);
    else throw new StorageError(`unknown key tag ${tag}`);
  }
  return parts;
}

/**
 * Compares two byte strings (the order of encoded keys).
 *
 * @example
 * ```ts
 * import { compareBytes } from "@murmur/murmur/durable";
 * console.log(compareBytes(new Uint8Array([1]), new Uint8Array([1, 0]))); // -1
 * ```
 */
export function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i]! < b[i]! ? -1 : 1;
  return a.length === b.length ? 0 : a.length < b.length ? -1 : 1;
}

/** What a commit costs, in the units of {@linkcode StorageLimits}. */
export interface CommitCost {
  /** Against `commitBytesMax`. */
  bytes: number;
  /** Against `commitKeysBytesMax`. */
  keyBytes: number;
  /** Against `checksMax` (an ordered append checks its prefix's sequence). */
  checks: number;
}

/**
 * What a commit costs, counted the way Deno KV does (the strictest of the
 * built-in backends, so that code that fits here fits everywhere): every check
 * key and every mutation key once, and a `set`'s or `sum`'s key once more with
 * its value; an ordered append as a `set` under its prefix and an order stamp,
 * plus, once per prefix, a check and a `set` of the prefix's sequence. `keySize`
 * gives the encoded size of a key (a subspace adds its prefix's).
 *
 * @example
 * ```ts
 * import { commitCost } from "@murmur/murmur/durable";
 * console.log(commitCost([], [{ type: "set", key: ["k"], value: new Uint8Array(10) }]));
 * ```
 */
export function commitCost(
  checks: readonly Check[],
  mutations: readonly Mutation[],
  keySize: (key: Key) => number = (k) => encodeKey(k).length,
): CommitCost {
  let bytes = 0, keyBytes = 0, nChecks = checks.length;
  for (const c of checks) bytes += keySize(c.key);
  const prefixes = new Map<string, number>();
  for (const m of mutations) {
    if (m.type === "appendOrdered") {
      const p = keySize(m.prefix);
      const k = p + APPEND_STAMP_BYTES_MAX;
      bytes += 2 * k + m.value.length;
      keyBytes += k;
      prefixes.set(hexOf(encodeKey(m.prefix)), p);
    } else {
      const k = keySize(m.key);
      keyBytes += k;
      bytes += m.type === "delete" ? k : 2 * k + (m.type === "set" ? m.value.length : 8);
    }
  }
  for (const p of prefixes.values()) {
    bytes += 3 * p + 8; // a check of the sequence, and its set
    keyBytes += p;
    nChecks++;
  }
  return { bytes, keyBytes, checks: nChecks };
}

function hexOf(b: Uint8Array): string {
  let s = "";
  for (const x of b) s += x.toString(16).padStart(2, "0");
  return s;
}

/**
 * Checks checks and mutations against limits; throws {@linkcode StorageLimitError}.
 *
 * @example
 * ```ts
 * import { checkCommitLimits, PORTABLE_LIMITS } from "@murmur/murmur/durable";
 * checkCommitLimits(PORTABLE_LIMITS, [], [{ type: "delete", key: ["k"] }]);
 * ```
 */
export function checkCommitLimits(
  limits: StorageLimits,
  checks: readonly Check[],
  mutations: readonly Mutation[],
): void {
  if (mutations.length > limits.mutationsMax) {
    throw new StorageLimitError("mutationsMax", mutations.length, limits.mutationsMax);
  }
  for (const c of checks) keyBytes(limits, c.key);
  for (const m of mutations) {
    const k = keyBytes(limits, m.type === "appendOrdered" ? m.prefix : m.key) +
      (m.type === "appendOrdered" ? APPEND_STAMP_BYTES_MAX : 0);
    if (k > limits.keyBytesMax) {
      throw new StorageLimitError("keyBytesMax", k, limits.keyBytesMax, "an ordered append's key");
    }
    if (m.type === "set" || m.type === "appendOrdered") {
      if (!(m.value instanceof Uint8Array)) {
        throw new TypeError(`${m.type} needs a Uint8Array value`);
      }
      if (m.value.length > limits.valueBytesMax) {
        throw new StorageLimitError("valueBytesMax", m.value.length, limits.valueBytesMax);
      }
    } else if (m.type === "sum") {
      if (typeof m.value !== "bigint") throw new TypeError("sum needs a bigint value");
    }
  }
  const cost = commitCost(checks, mutations);
  if (cost.checks > limits.checksMax) {
    throw new StorageLimitError("checksMax", cost.checks, limits.checksMax);
  }
  if (cost.bytes > limits.commitBytesMax) {
    throw new StorageLimitError("commitBytesMax", cost.bytes, limits.commitBytesMax);
  }
  if (cost.keyBytes > limits.commitKeysBytesMax) {
    throw new StorageLimitError("commitKeysBytesMax", cost.keyBytes, limits.commitKeysBytesMax);
  }
}

/**
 * The encoded size of a key, checked against `keyBytesMax`.
 *
 * @example
 * ```ts
 * import { keyBytes, PORTABLE_LIMITS } from "@murmur/murmur/durable";
 * console.log(keyBytes(PORTABLE_LIMITS, ["a"])); // 3
 * ```
 */
export function keyBytes(limits: StorageLimits, key: Key): number {
  const n = encodeKey(key).length;
  if (n > limits.keyBytesMax) throw new StorageLimitError("keyBytesMax", n, limits.keyBytesMax);
  return n;
}

// ------------------------------------------------------------------ helpers

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

/**
 * Formats a commit number as a 20-hex-digit versionstamp (the memory backend's
 * and the shape of Deno KV's).
 *
 * @example
 * ```ts
 * import { versionstampOf } from "@murmur/murmur/durable";
 * console.log(versionstampOf(255n)); // 000000000000000000ff
 * ```
 */
export function versionstampOf(n: bigint): string {
  return n.toString(16).padStart(20, "0");
}
