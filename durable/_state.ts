// The durable state of a server: reads (with a cache keyed by versionstamp)
// and writes planned against the backend's limits with the real sizes of the
// keys, so that a state that cannot be committed is known before anything is
// written. Chunks written ahead by an attempt that does not commit are removed.
// Module-private.

import type { Clock } from "../base/clock.ts";
import { decodeValue } from "../base/codec.ts";
import type { DurableServerStats } from "./behaviour.ts";
import { StateTooLargeError } from "./errors.ts";
import { dec, enc, K_STATE, randomId } from "./_records.ts";
import {
  type Check,
  type Entry,
  type Key,
  type Mutation,
  type Storage,
  StorageError,
  StorageLimitError,
} from "./storage.ts";
import { encodeKey } from "./keys.ts";

/** State header: [generation, chunks, bytes, inline state?]. Chunks 0: inline. */
export type Header = [string, number, number, Uint8Array?];
/** Header bytes besides an inline state. */
const HEADER_OVERHEAD_BYTES = 64;
/** Orphaned chunk generations younger than this are left alone by the GC. */
export const ORPHAN_GRACE_MS = 10 * 60 * 1000;

export interface Loaded<S> {
  state: S;
  /** Versionstamp of the header, null when no state exists. */
  versionstamp: string | null;
  header: Header | null;
  bytes: Uint8Array;
}

/** What else the commit that writes the state carries, as {@linkcode commitCost} counts it. */
export interface Beside {
  /** Against `commitBytesMax`. */
  bytes: number;
  /** Against `commitKeysBytesMax`. */
  keyBytes: number;
  /** Number of other mutations. */
  mutations: number;
}

/** A state write, ready for its final commit. */
export interface StateWrite {
  checks: Check[];
  mutations: Mutation[];
  bytes: Uint8Array;
  header: Header;
  /** Chunk keys written ahead; removed if the final commit does not happen. */
  early: Key[];
  /** Old chunks that did not fit in the final commit: removed after it. */
  after: Key[];
}

export class StateStore<S> {
  readonly #db: Storage;
  readonly #prefixBytes: number;
  readonly #stateBytesMax: number;
  readonly #clock: Clock;
  readonly #useCache: boolean;
  readonly #stats: DurableServerStats;
  #cache: Loaded<S> | undefined;

  /** `prefixBytes`: the encoded size of the key prefix the subspace `db` adds. */
  constructor(
    db: Storage,
    prefixBytes: number,
    stateBytesMax: number,
    clock: Clock,
    useCache: boolean,
    stats: DurableServerStats,
  ) {
    this.#db = db;
    this.#prefixBytes = prefixBytes;
    this.#stateBytesMax = stateBytesMax;
    this.#clock = clock;
    this.#useCache = useCache;
    this.#stats = stats;
  }

  get cached(): Loaded<S> | undefined {
    return this.#useCache ? this.#cache : undefined;
  }

  invalidate(): void {
    this.#cache = undefined;
  }

  /** The encoded size of a key of this server, prefix included. */
  keyBytes(key: Key): number {
    return this.#prefixBytes + encodeKey(key).length;
  }

  /** Reads the state (from the cache when its versionstamp still matches). */
  async load(known?: Entry): Promise<Loaded<S>> {
    for (let attempt = 0; attempt < 100; attempt++) {
      const h = attempt === 0 && known !== undefined ? known : await this.#db.get(K_STATE);
      if (h.value === null) throw new StorageError("the durable state is missing (killed?)");
      if (
        this.#useCache && this.#cache !== undefined && this.#cache.versionstamp === h.versionstamp
      ) {
        this.#stats.cacheHits++;
        return this.#cache;
      }
      this.#stats.cacheMisses++;
      const header = dec<Header>(h);
      const [gen, chunks, size, inline] = header;
      let bytes: Uint8Array;
      if (chunks === 0 && inline instanceof Uint8Array) bytes = inline;
      else {
        const parts = await this.#db.list({ prefix: [...K_STATE, gen] }, { limit: chunks });
        if (parts.length !== chunks) continue; // replaced meanwhile: read again
        bytes = new Uint8Array(size);
        let at = 0;
        for (const p of parts) {
          const v = p.value as Uint8Array;
          bytes.set(v, at);
          at += v.length;
        }
      }
      const loaded: Loaded<S> = {
        state: decodeValue(bytes) as S,
        versionstamp: h.versionstamp,
        header,
        bytes,
      };
      if (this.#useCache) this.#cache = loaded;
      return loaded;
    }
    throw new StorageError("the state kept changing while being read");
  }

  /**
   * Prepares the mutations that replace the state (encoded as `bytes`) beside
   * the commit's other mutations. Everything that could fail (encoding, size,
   * key lengths, the commit's limits) is checked before anything is written;
   * chunks that cannot fit in the final commit are then written ahead under a
   * fresh generation, invisible until the header names it.
   *
   * @throws {StateTooLargeError} over `stateBytesMax`.
   * @throws {StorageLimitError} a key too long for the backend (a long tenant).
   */
  async prepare(
    _state: S,
    bytes: Uint8Array,
    old: Header | null,
    beside: Beside,
  ): Promise<StateWrite> {
    const L = this.#db.limits;
    if (bytes.length > this.#stateBytesMax) {
      throw new StateTooLargeError(bytes.length, this.#stateBytesMax);
    }
    const headerKey = this.keyBytes(K_STATE);
    if (headerKey > L.keyBytesMax) {
      throw new StorageLimitError("keyBytesMax", headerKey, L.keyBytesMax, "the state's key");
    }
    // The final commit's budget, counted as the backend counts it (commitCost).
    let budgetBytes = L.commitBytesMax - beside.bytes - 2 * headerKey - HEADER_OVERHEAD_BYTES;
    let budgetKeys = L.commitKeysBytesMax - beside.keyBytes - headerKey;
    let budgetMutations = L.mutationsMax - beside.mutations - 1;
    // Old chunks go in the final commit when they fit, else right after it.
    const inCommitDeletes: Mutation[] = [];
    const after: Key[] = [];
    if (old !== null) {
      for (let i = 0; i < old[1]; i++) {
        const k: Key = [...K_STATE, old[0], i];
        const kb = this.keyBytes(k);
        if (kb <= budgetBytes && kb <= budgetKeys && budgetMutations > 0) {
          inCommitDeletes.push({ type: "delete", key: k });
          budgetBytes -= kb;
          budgetKeys -= kb;
          budgetMutations--;
        } else after.push(k);
      }
    }
    const over = (what: string, bytesNeeded: number) =>
      new StorageLimitError(
        "commitBytesMax",
        L.commitBytesMax - budgetBytes + bytesNeeded,
        L.commitBytesMax,
        what,
      );
    if (bytes.length + HEADER_OVERHEAD_BYTES <= L.valueBytesMax) {
      // Small state: inline in the header.
      const header: Header = [old?.[0] ?? "inline", 0, bytes.length, bytes];
      const value = enc(header);
      if (value.length > budgetBytes + HEADER_OVERHEAD_BYTES) {
        throw over("the state beside the rest of the commit", value.length - HEADER_OVERHEAD_BYTES);
      }
      if (budgetKeys < 0 || budgetMutations < 0) {
        throw over("the state's key beside the rest of the commit", 0);
      }
      return {
        checks: [],
        mutations: [{ type: "set", key: K_STATE, value }, ...inCommitDeletes],
        bytes,
        header,
        early: [],
        after,
      };
    }
    const chunk = L.valueBytesMax;
    const n = Math.ceil(bytes.length / chunk);
    const born = Math.floor(this.#clock.wallNow()).toString(36).padStart(10, "0");
    const gen = `${born}-${randomId().slice(0, 8)}`;
    const chunkKey = (i: number): Key => [...K_STATE, gen, i];
    const longest = this.keyBytes(chunkKey(n - 1));
    if (longest > L.keyBytesMax) {
      throw new StorageLimitError(
        "keyBytesMax",
        longest,
        L.keyBytesMax,
        `the state's chunk keys (the tenant key is too long for a state of ${bytes.length} bytes)`,
      );
    }
    if (budgetBytes < 0 || budgetKeys < 0 || budgetMutations < 0) {
      throw over("the state's header beside the rest of the commit", 0);
    }
    const header: Header = [gen, n, bytes.length];
    const inCommit: Mutation[] = [];
    const early: Mutation[] = [];
    for (let i = 0; i < n; i++) {
      const value = bytes.subarray(i * chunk, (i + 1) * chunk);
      const m: Mutation = { type: "set", key: chunkKey(i), value };
      const kb = this.keyBytes(m.key);
      const cost = 2 * kb + value.length;
      if (cost <= budgetBytes && kb <= budgetKeys && budgetMutations > 0) {
        inCommit.push(m);
        budgetBytes -= cost;
        budgetKeys -= kb;
        budgetMutations--;
      } else early.push(m);
    }
    // Write ahead what does not fit, in as many commits as needed; undo on failure.
    const written: Key[] = [];
    let batch: Mutation[] = [];
    let batchBytes = 0, batchKeys = 0;
    const flush = async () => {
      if (batch.length === 0) return;
      const r = await this.#db.commit([], batch);
      if (!r.ok) throw new StorageError("writing state chunks ahead failed");
      for (const m of batch) written.push((m as { key: Key }).key);
      batch = [];
      batchBytes = batchKeys = 0;
    };
    try {
      for (const m of early) {
        const kb = this.keyBytes((m as { key: Key }).key);
        const cost = 2 * kb + (m as { value: Uint8Array }).value.length;
        if (
          batchBytes + cost > L.commitBytesMax || batchKeys + kb > L.commitKeysBytesMax ||
          batch.length >= L.mutationsMax
        ) await flush();
        batch.push(m);
        batchBytes += cost;
        batchKeys += kb;
      }
      await flush();
    } catch (e) {
      await this.discardKeys(written);
      throw e;
    }
    return {
      checks: [],
      mutations: [
        ...inCommit,
        { type: "set", key: K_STATE, value: enc(header) },
        ...inCommitDeletes,
      ],
      bytes,
      header,
      early: written,
      after,
    };
  }

  /** Removes chunks written ahead by a write that did not commit. */
  async discard(write: StateWrite): Promise<void> {
    await this.discardKeys(write.early);
  }

  /** After the final commit: removes old chunks that did not fit in it. */
  async cleanup(write: StateWrite): Promise<void> {
    await this.discardKeys(write.after);
  }

  async discardKeys(keys: readonly Key[]): Promise<void> {
    const per = Math.max(1, this.#db.limits.mutationsMax);
    for (let i = 0; i < keys.length; i += per) {
      const group = keys.slice(i, i + per);
      try {
        const r = await this.#db.commit([], group.map((key) => ({ type: "delete", key })));
        if (r.ok) this.#stats.chunksRemoved += group.length;
      } catch { /* the GC removes orphaned generations later */ }
    }
  }

  /** Caches what was just committed. */
  remember(state: S, versionstamp: string, write: StateWrite): void {
    if (this.#useCache) {
      this.#cache = { state, versionstamp, header: write.header, bytes: write.bytes };
    }
  }
}
