/**
 * {@linkcode Storage} on Deno KV: `:memory:`, a file, an open `Deno.Kv`, or a
 * KV Connect URL (whatever `Deno.openKv` accepts). Needs `"unstable": ["kv"]`.
 *
 * Two facts of local file KV shape it: a process's `watch` does not see another
 * process's writes, so watches also poll (`pollIntervalMs`) when the database
 * is a file; and two processes writing one file can get "database is locked",
 * which is retried with backoff (`lockedRetriesMax`).
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
  type Storage,
  StorageError,
  type StorageLimits,
  type Value,
} from "./storage.ts";
import { checkCommitLimits, PORTABLE_LIMITS } from "./limits.ts";
import { compareBytes, encodeKey } from "./keys.ts";

/** Options of {@linkcode DenoKvStorage.open}. */
export interface DenoKvStorageOptions {
  /**
   * Poll period of watches, so that writes of other processes are seen
   * (default 100 ms for a file, off for `:memory:` and remote databases).
   */
  pollIntervalMs?: number;
  /**
   * A watch that polls and sees nothing change doubles its poll period, up to
   * this; any change (or a write of this process, which Deno KV's own watch
   * reports at once) brings it back to `pollIntervalMs`. An idle durable
   * server then costs a read every few seconds, not ten a second (1,000 idle
   * servers on one file took about 1 core before); another process's write to
   * an idle key is seen within this bound.
   *
   * @default 5000
   */
  pollIdleMaxMs?: number;
  /** Retries of an operation that got "database is locked" (default 100, backoff up to 50 ms). */
  lockedRetriesMax?: number;
  /**
   * Retries of an ordered append whose sequence was taken by another writer.
   *
   * @default 1000
   */
  appendRetriesMax?: number;
  /** Close the `Deno.Kv` on `close()` (default: true when this class opened it). */
  ownsKv?: boolean;
}

const GET_MANY_MAX = 10;
const DEFAULT_POLL_IDLE_MAX_MS = 5000;
const WATCH_KEYS_MAX = 10;

function toKvKey(key: Key): Deno.KvKey {
  return key as Deno.KvKey;
}

function fromKv(value: unknown): Value | null {
  if (value === null || value === undefined) return null;
  if (value instanceof Deno.KvU64) return value.value;
  if (value instanceof Uint8Array) return value;
  throw new StorageError(`value of unexpected type ${typeof value} (written by something else?)`);
}

function isLocked(e: unknown): boolean {
  return e instanceof Error && /database is locked|SQLITE_BUSY/i.test(e.message);
}

/**
 * Deno KV as murmur storage.
 *
 * @example
 * ```ts
 * import { DenoKvStorage } from "@murmur/murmur/durable";
 * await using db = await DenoKvStorage.open(":memory:");
 * await db.commit([], [{ type: "set", key: ["a"], value: new Uint8Array([1]) }]);
 * console.log((await db.get(["a"])).value); // Uint8Array(1) [ 1 ]
 * ```
 */
export class DenoKvStorage implements Storage {
  readonly limits: StorageLimits = PORTABLE_LIMITS;
  readonly #kv: Deno.Kv;
  readonly #owns: boolean;
  readonly #pollMs: number;
  readonly #pollIdleMaxMs: number;
  readonly #lockedRetriesMax: number;
  readonly #appendRetriesMax: number;
  readonly #seq = new Map<string, { versionstamp: string | null; next: bigint }>();
  #appendChain: Promise<unknown> = Promise.resolve();
  #closed = false;
  readonly #closing = new AbortController();

  private constructor(kv: Deno.Kv, owns: boolean, pollMs: number, options: DenoKvStorageOptions) {
    this.#kv = kv;
    this.#owns = options.ownsKv ?? owns;
    this.#pollMs = pollMs;
    this.#pollIdleMaxMs = options.pollIdleMaxMs ?? DEFAULT_POLL_IDLE_MAX_MS;
    this.#lockedRetriesMax = options.lockedRetriesMax ?? 100;
    this.#appendRetriesMax = options.appendRetriesMax ?? 1000;
  }

  /**
   * Opens a database: `":memory:"`, a file path, a KV Connect URL, or an open
   * `Deno.Kv` (which `close()` then leaves open unless `ownsKv`).
   */
  static async open(
    path: string | Deno.Kv = ":memory:",
    options: DenoKvStorageOptions = {},
  ): Promise<DenoKvStorage> {
    const idleMax = options.pollIdleMaxMs ?? DEFAULT_POLL_IDLE_MAX_MS;
    if (!(idleMax > 0 && Number.isFinite(idleMax))) {
      throw new RangeError(`pollIdleMaxMs must be a positive number of ms, got ${idleMax}`);
    }
    if (typeof path !== "string") {
      return new DenoKvStorage(path, false, options.pollIntervalMs ?? 0, options);
    }
    const isFile = path !== ":memory:" && !/^https?:\/\//.test(path);
    const kv = await Deno.openKv(path);
    return new DenoKvStorage(kv, true, options.pollIntervalMs ?? (isFile ? 100 : 0), options);
  }

  /** The underlying `Deno.Kv`. */
  get kv(): Deno.Kv {
    return this.#kv;
  }

  async #retry<T>(op: () => Promise<T>): Promise<T> {
    for (let attempt = 0;; attempt++) {
      if (this.#closed) throw new StorageError("storage is closed");
      try {
        return await op();
      } catch (e) {
        if (!isLocked(e) || attempt >= this.#lockedRetriesMax) {
          if (e instanceof StorageError || e instanceof TypeError || e instanceof RangeError) {
            throw e;
          }
          throw new StorageError(`Deno KV: ${(e as Error).message}`, { cause: e });
        }
        await new Promise((r) =>
          setTimeout(r, Math.min(50, 1 + attempt * 2) * (0.5 + Math.random() / 2))
        );
      }
    }
  }

  /** Reads one key. */
  get(key: Key): Promise<Entry> {
    return this.#retry(async () => {
      const e = await this.#kv.get(toKvKey(key));
      return { key, value: fromKv(e.value), versionstamp: e.versionstamp };
    });
  }

  /** Reads several keys (in groups of 10, Deno KV's limit; one snapshot per group). */
  getMany(keys: readonly Key[]): Promise<Entry[]> {
    return this.#retry(async () => {
      const out: Entry[] = [];
      for (let i = 0; i < keys.length; i += GET_MANY_MAX) {
        const group = keys.slice(i, i + GET_MANY_MAX);
        const es = await this.#kv.getMany(group.map(toKvKey));
        es.forEach((e, j) =>
          out.push({ key: group[j]!, value: fromKv(e.value), versionstamp: e.versionstamp })
        );
      }
      return out;
    });
  }

  /** Reads a range. */
  list(selector: ListSelector, options: ListOptions = {}): Promise<Entry[]> {
    const limit = Math.min(options.limit ?? this.limits.listLimitMax, this.limits.listLimitMax);
    const prefix = selector.prefix ?? [];
    let sel: Deno.KvListSelector;
    // Deno KV takes {prefix}, {prefix, start}, {prefix, end} or {start, end}; filter the rest.
    let endBytes: Uint8Array | undefined;
    let startBytes: Uint8Array | undefined;
    if (selector.start && selector.end) {
      if (prefix.length > 0) {
        sel = { prefix: toKvKey(prefix), start: toKvKey(selector.start) };
        endBytes = encodeKey(selector.end);
      } else sel = { start: toKvKey(selector.start), end: toKvKey(selector.end) };
    } else if (selector.start) sel = { prefix: toKvKey(prefix), start: toKvKey(selector.start) };
    else if (selector.end) sel = { prefix: toKvKey(prefix), end: toKvKey(selector.end) };
    else sel = { prefix: toKvKey(prefix) };
    if (options.reverse && endBytes) {
      // Reverse with three bounds: use {prefix, end} and filter the start instead.
      sel = { prefix: toKvKey(prefix), end: toKvKey(selector.end!) };
      startBytes = encodeKey(selector.start!);
      endBytes = undefined;
    }
    return this.#retry(async () => {
      const out: Entry[] = [];
      const it = this.#kv.list(sel, {
        reverse: options.reverse ?? false,
        batchSize: Math.min(limit, 500),
        ...(endBytes || startBytes ? {} : { limit }),
      });
      for await (const e of it) {
        const k = e.key as Key;
        if (endBytes && compareBytes(encodeKey(k), endBytes) >= 0) break;
        if (startBytes && compareBytes(encodeKey(k), startBytes) < 0) break;
        out.push({ key: k, value: fromKv(e.value), versionstamp: e.versionstamp });
        if (out.length >= limit) break;
      }
      return out;
    });
  }

  /** Commits atomically; ordered appends use a per-prefix sequence kept at the prefix key. */
  commit(checks: readonly Check[], mutations: readonly Mutation[]): Promise<CommitResult> {
    try {
      checkCommitLimits(this.limits, checks, mutations);
      for (const m of mutations) {
        if (m.type === "sum" && (m.value < 0n || m.value >= 2n ** 64n)) {
          throw new RangeError("sum takes a value in [0, 2^64) on Deno KV");
        }
      }
    } catch (e) {
      return Promise.reject(e);
    }
    if (!mutations.some((m) => m.type === "appendOrdered")) {
      return this.#retry(() => this.#plainCommit(checks, mutations, new Map()));
    }
    // One ordered committer at a time in this process: no conflicts among ourselves.
    const run = this.#appendChain.then(() => this.#appendCommit(checks, mutations));
    this.#appendChain = run.catch(() => {});
    return run;
  }

  async #appendCommit(
    checks: readonly Check[],
    mutations: readonly Mutation[],
  ): Promise<CommitResult> {
    const prefixes = new Map<string, Key>();
    for (const m of mutations) {
      if (m.type === "appendOrdered") prefixes.set(hexKey(m.prefix), m.prefix);
    }
    for (let attempt = 0; attempt <= this.#appendRetriesMax; attempt++) {
      // Sequences not cached yet (or invalidated) are read first.
      const missing = [...prefixes].filter(([id]) => !this.#seq.has(id));
      if (missing.length > 0) {
        const es = await this.getMany(missing.map(([, k]) => k));
        es.forEach((e, i) => {
          const v = e.value;
          this.#seq.set(missing[i]![0], {
            versionstamp: e.versionstamp,
            next: typeof v === "bigint" ? v : 0n,
          });
        });
      }
      const r = await this.#retry(() => this.#plainCommit(checks, mutations, prefixes));
      if (r.ok) return r;
      // A failure is ours to retry only when a sequence moved; otherwise a caller's check failed.
      const es = await this.getMany([...prefixes.values()]);
      let moved = false;
      [...prefixes.keys()].forEach((id, i) => {
        if (this.#seq.get(id)?.versionstamp !== es[i]!.versionstamp) moved = true;
        this.#seq.delete(id);
      });
      if (!moved) return r;
      await new Promise((res) => setTimeout(res, Math.random() * Math.min(20, attempt + 1)));
    }
    throw new StorageError(
      `ordered append kept conflicting after ${this.#appendRetriesMax} retries`,
    );
  }

  async #plainCommit(
    checks: readonly Check[],
    mutations: readonly Mutation[],
    prefixes: Map<string, Key>,
  ): Promise<CommitResult> {
    const op = this.#kv.atomic();
    for (const c of checks) op.check({ key: toKvKey(c.key), versionstamp: c.versionstamp });
    const next = new Map<string, bigint>();
    for (const [id, key] of prefixes) {
      const s = this.#seq.get(id)!;
      op.check({ key: toKvKey(key), versionstamp: s.versionstamp });
      next.set(id, s.next);
    }
    for (const m of mutations) {
      switch (m.type) {
        case "set":
          op.set(toKvKey(m.key), m.value);
          break;
        case "delete":
          op.delete(toKvKey(m.key));
          break;
        case "sum":
          op.sum(toKvKey(m.key), m.value);
          break;
        case "appendOrdered": {
          const id = hexKey(m.prefix);
          const n = next.get(id)!;
          next.set(id, n + 1n);
          const stamp = new Uint8Array(8);
          new DataView(stamp.buffer).setBigUint64(0, n);
          op.set(toKvKey([...m.prefix, stamp]), m.value);
          break;
        }
      }
    }
    for (const [id, key] of prefixes) op.set(toKvKey(key), new Deno.KvU64(next.get(id)!));
    const r = await op.commit();
    if (!r.ok) return { ok: false };
    for (const [id] of prefixes) {
      this.#seq.set(id, { versionstamp: r.versionstamp, next: next.get(id)! });
    }
    return { ok: true, versionstamp: r.versionstamp };
  }

  /**
   * Watches keys. Uses Deno KV's watch (up to 10 keys) and, for a file
   * database, also polls so that other processes' writes are seen.
   */
  async *watch(keys: readonly Key[], signal?: AbortSignal): AsyncIterable<Entry[]> {
    if (this.#closed) throw new StorageError("storage is closed");
    const stop = AbortSignal.any([this.#closing.signal, ...(signal ? [signal] : [])]);
    let wake: (() => void) | undefined;
    let dirty = true;
    const poke = () => {
      dirty = true;
      wake?.();
    };
    let pollDelay = 0; // set below
    const watched = () => {
      pollDelay = pollMs; // something happened: poll at the short period again
      poke();
    };
    stop.addEventListener("abort", poke);
    let reader: ReadableStreamDefaultReader<Deno.KvEntryMaybe<unknown>[]> | undefined;
    let pump: Promise<void> | undefined;
    if (keys.length <= WATCH_KEYS_MAX) {
      reader = this.#kv.watch(keys.map(toKvKey)).getReader();
      const r = reader;
      pump = (async () => {
        try {
          for (;;) {
            const { done } = await r.read();
            if (done) return;
            watched();
          }
        } catch { /* closed */ }
      })();
    }
    const usePoll = this.#pollMs > 0 || reader === undefined;
    const pollMs = this.#pollMs > 0 ? this.#pollMs : 100;
    pollDelay = pollMs;
    let last: string | undefined;
    try {
      while (!stop.aborted) {
        if (dirty) {
          dirty = false;
          const entries = await this.getMany(keys);
          const stamp = entries.map((e) => e.versionstamp ?? "-").join(",");
          if (stamp !== last) {
            last = stamp;
            pollDelay = pollMs;
            yield entries;
          } else pollDelay = Math.min(this.#pollIdleMaxMs, pollDelay * 2);
          continue;
        }
        let timer: ReturnType<typeof setTimeout> | undefined;
        await new Promise<void>((r) => {
          wake = r;
          if (usePoll) timer = setTimeout(poke, pollDelay);
        });
        wake = undefined;
        if (timer !== undefined) clearTimeout(timer);
      }
    } finally {
      stop.removeEventListener("abort", poke);
      await reader?.cancel().catch(() => {});
      await pump;
    }
  }

  /** Closes (the `Deno.Kv` too when this storage owns it); pending watches end. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closing.abort();
    await this.#appendChain;
    this.#closed = true;
    if (this.#owns) this.#kv.close();
  }

  /** Same as `close()`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

function hexKey(key: Key): string {
  return Array.from(encodeKey(key), (b) => b.toString(16).padStart(2, "0")).join("");
}
