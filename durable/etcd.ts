/**
 * {@linkcode Storage} on etcd (v3), through its HTTP/JSON gateway with `fetch`:
 * no client package, nothing native. This entry point is separate
 * (`@murmur/murmur/durable/etcd`), so users who never touch etcd never load it.
 *
 * Mapping: keys are the tuple encoding of {@linkcode encodeKey} under an
 * optional prefix; a versionstamp is the key's `mod_revision` (etcd bumps one
 * revision per transaction, so every key a commit writes carries the commit's
 * revision); a commit is one etcd transaction whose compares are the checks.
 * Sums and ordered appends are computed here and made atomic by comparing the
 * `mod_revision` of the counters they read (retried when another writer moved
 * one). Every commit also writes a commit id (under a lease, so ids vanish on
 * their own), and only if that id is absent: a commit whose answer was lost
 * (an endpoint died, a leader election) is retried on another endpoint and
 * can apply at most once; when its checks then fail, the id is fenced so the
 * lost attempt can never apply later, and the commit reports exactly what
 * happened. Bookkeeping keys live under the prefix followed by byte `0xff`.
 *
 * @example
 * ```ts ignore
 * import { EtcdStorage } from "@murmur/murmur/durable/etcd";
 * await using db = await EtcdStorage.open({
 *   endpoints: ["http://127.0.0.1:2379", "http://127.0.0.1:22379", "http://127.0.0.1:32379"],
 *   prefix: ["my-app"],
 * });
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
  type Storage,
  StorageError,
  type StorageLimits,
} from "./storage.ts";
import { checkCommitLimits } from "./limits.ts";
import { decodeKey, encodeKey } from "./keys.ts";
import { rangeOf } from "./memory_storage.ts";
import {
  b64,
  classify,
  CODE_NOT_FOUND,
  EtcdClient,
  EtcdError,
  type Json,
  revToStamp,
  unb64,
} from "./_etcd_client.ts";
import { WakeStreams } from "./_etcd_watch.ts";
import { CommitIdLease } from "./_etcd_lease.ts";
import { KnownCounters } from "./_etcd_known.ts";
import { GroupCommit, type GroupCommitStats } from "./_etcd_group.ts";
import {
  buildTxn,
  concat,
  hex,
  ID_APPLIED,
  ID_FENCED,
  META,
  type Plan,
  planCommit,
  type TxnOf,
  unpackValue,
  utf8,
  wrapError,
} from "./_etcd_txn.ts";

export { EtcdError } from "./_etcd_client.ts";
export type { GroupCommitStats } from "./_etcd_group.ts";

/** Options of {@linkcode EtcdStorage.open}. */
export interface EtcdStorageOptions {
  /** Client URLs of the cluster's members, `http://` or `https://` (at least one). */
  endpoints: readonly string[];
  /** Every key is stored under this prefix (default none). Storages on one cluster need disjoint prefixes. */
  prefix?: Key;
  /** User name, when the cluster has authentication enabled. */
  username?: string;
  /** Password of `username`. */
  password?: string;
  /** PEM CA certificates to trust for `https://` endpoints. */
  caCerts?: string[];
  /** PEM client certificate (with `key`), for clusters that require one. */
  cert?: string;
  /** PEM private key of `cert`. */
  key?: string;
  /**
   * Timeout of one request to one endpoint; past it the next endpoint is tried.
   *
   * @default 5000
   */
  requestTimeoutMs?: number;
  /**
   * How long an operation keeps retrying over the endpoints.
   *
   * @default 30000
   */
  retryDeadlineMs?: number;
  /**
   * The cluster's `--max-txn-ops` (etcd's default).
   *
   * @default 128
   */
  maxTxnOps?: number;
  /**
   * The cluster's `--max-request-bytes` (etcd's default).
   *
   * @default 1572864
   */
  maxRequestBytes?: number;
  /**
   * Lifetime of commit ids, in seconds: the lease they are written under.
   *
   * @default 60
   */
  commitIdTtlSec?: number;
  /**
   * Retries of a commit whose counters or sequences another writer moved.
   *
   * @default 1000
   */
  conflictRetriesMax?: number;
  /**
   * Watches re-read their keys at least this often, whatever the streams say.
   *
   * @default 1000
   */
  watchPollMs?: number;
}

/** Bytes left for the framing of a transaction request. */
const REQUEST_SLACK_BYTES = 16 * 1024;
/** Largest key this backend accepts (etcd itself is bounded only by the request size). */
const ETCD_KEY_BYTES_MAX = 4096;

/**
 * The limits of an etcd cluster started with the given `--max-txn-ops` and
 * `--max-request-bytes`: one transaction holds the mutations, one sequence per
 * appended prefix and the commit id; compares are the checks, one per counter
 * summed or sequence appended, and the commit id.
 *
 * @example
 * ```ts
 * import { etcdLimits } from "@murmur/murmur/durable/etcd";
 * console.log(etcdLimits(128, 1572864).mutationsMax); // 126
 * ```
 */
export function etcdLimits(maxTxnOps = 128, maxRequestBytes = 1572864): StorageLimits {
  if (!Number.isInteger(maxTxnOps) || maxTxnOps < 16) {
    throw new RangeError(`maxTxnOps must be an integer of at least 16, got ${maxTxnOps}`);
  }
  if (!Number.isInteger(maxRequestBytes) || maxRequestBytes < 256 * 1024) {
    throw new RangeError(
      `maxRequestBytes must be an integer of at least 262144, got ${maxRequestBytes}`,
    );
  }
  const commitBytesMax = maxRequestBytes - REQUEST_SLACK_BYTES;
  return Object.freeze({
    keyBytesMax: ETCD_KEY_BYTES_MAX,
    valueBytesMax: commitBytesMax - 2 * ETCD_KEY_BYTES_MAX - 64,
    mutationsMax: maxTxnOps - 2,
    checksMax: maxTxnOps - 8,
    commitBytesMax,
    commitKeysBytesMax: commitBytesMax,
    listLimitMax: 1000,
  });
}

/**
 * etcd as murmur storage.
 *
 * @example
 * ```ts ignore
 * import { EtcdStorage } from "@murmur/murmur/durable/etcd";
 * import { atomic } from "@murmur/murmur/durable";
 * await using db = await EtcdStorage.open({ endpoints: ["http://127.0.0.1:2379"] });
 * await atomic(db).sum(["visits"], 1n).commit();
 * console.log((await db.get(["visits"])).value);
 * ```
 */
export class EtcdStorage implements Storage {
  readonly limits: StorageLimits;
  readonly #client: EtcdClient;
  readonly #prefix: Uint8Array;
  readonly #meta: Uint8Array;
  readonly #o: Required<
    Pick<
      EtcdStorageOptions,
      | "requestTimeoutMs"
      | "retryDeadlineMs"
      | "maxTxnOps"
      | "maxRequestBytes"
      | "commitIdTtlSec"
      | "conflictRetriesMax"
      | "watchPollMs"
    >
  >;
  readonly #closing = new AbortController();
  readonly #httpClient: Deno.HttpClient | undefined;
  readonly #known = new KnownCounters();
  readonly #lease: CommitIdLease;
  readonly #watches = new Set<Promise<void>>();
  /** Commits with counters or sequences: one at a time, those waiting merged (group commit). */
  readonly #group = new GroupCommit(
    (checks, mutations) => this.#commit(checks, this.#plan(mutations)),
    (k) => hex(this.#key(k)),
  );

  private constructor(o: EtcdStorageOptions, httpClient: Deno.HttpClient | undefined) {
    const num = (name: keyof EtcdStorageOptions, v: number | undefined, d: number, min = 1) => {
      const x = v ?? d;
      if (typeof x !== "number" || !(x >= min) || !Number.isFinite(x)) {
        throw new RangeError(`${name} must be a finite number of at least ${min}, got ${v}`);
      }
      return x;
    };
    this.#o = {
      requestTimeoutMs: num("requestTimeoutMs", o.requestTimeoutMs, 5000, 50),
      retryDeadlineMs: num("retryDeadlineMs", o.retryDeadlineMs, 30_000, 100),
      maxTxnOps: num("maxTxnOps", o.maxTxnOps, 128, 16),
      maxRequestBytes: num("maxRequestBytes", o.maxRequestBytes, 1572864, 256 * 1024),
      commitIdTtlSec: num("commitIdTtlSec", o.commitIdTtlSec, 60, 5),
      conflictRetriesMax: num("conflictRetriesMax", o.conflictRetriesMax, 1000),
      watchPollMs: num("watchPollMs", o.watchPollMs, 1000, 10),
    };
    this.limits = etcdLimits(this.#o.maxTxnOps, this.#o.maxRequestBytes);
    this.#prefix = encodeKey(o.prefix ?? []);
    this.#meta = concat(this.#prefix, new Uint8Array([META]));
    this.#httpClient = httpClient;
    this.#client = new EtcdClient(
      {
        endpoints: [...o.endpoints],
        requestTimeoutMs: this.#o.requestTimeoutMs,
        retryDeadlineMs: this.#o.retryDeadlineMs,
        ...(o.username !== undefined ? { username: o.username } : {}),
        ...(o.password !== undefined ? { password: o.password } : {}),
        ...(httpClient !== undefined ? { httpClient } : {}),
      },
      this.#closing.signal,
    );
    this.#lease = new CommitIdLease(this.#client, this.#o.commitIdTtlSec, this.#closing.signal);
  }

  /**
   * Connects: checks the options and that some endpoint answers (within
   * `retryDeadlineMs`). Fails with a {@linkcode StorageError} naming the
   * endpoints tried when none does.
   */
  static async open(options: EtcdStorageOptions): Promise<EtcdStorage> {
    if (typeof options !== "object" || options === null) {
      throw new TypeError("EtcdStorage.open needs options with endpoints");
    }
    const endpoints = options.endpoints;
    if (!Array.isArray(endpoints) || endpoints.length === 0) {
      throw new TypeError("endpoints must be a non-empty array of URLs");
    }
    const cleaned = endpoints.map((e) => {
      let u: URL;
      try {
        u = new URL(e);
      } catch {
        throw new TypeError(`endpoint ${JSON.stringify(e)} is not a URL`);
      }
      if (u.protocol !== "http:" && u.protocol !== "https:") {
        throw new TypeError(`endpoint ${e} must be http:// or https://`);
      }
      return u.origin;
    });
    if ((options.cert === undefined) !== (options.key === undefined)) {
      throw new TypeError("cert and key go together");
    }
    const tls = options.caCerts !== undefined || options.cert !== undefined;
    const httpClient = tls
      ? Deno.createHttpClient({
        ...(options.caCerts ? { caCerts: options.caCerts } : {}),
        ...(options.cert ? { cert: options.cert, key: options.key! } : {}),
      })
      : undefined;
    const db = new EtcdStorage({ ...options, endpoints: cleaned }, httpClient);
    try {
      await db.#client.call("/v3/maintenance/status", {});
    } catch (e) {
      await db.close();
      throw new StorageError(`could not reach etcd: ${(e as Error).message}`, { cause: e });
    }
    return db;
  }

  /** The endpoint requests go to now (they fail over to the next one). */
  get endpoint(): string {
    return this.#client.current;
  }

  #key(key: Key): Uint8Array {
    return concat(this.#prefix, encodeKey(key));
  }

  #unkey(bytes: Uint8Array): Key | undefined {
    try {
      return decodeKey(bytes.subarray(this.#prefix.length));
    } catch {
      return undefined; // a nested storage's bookkeeping key
    }
  }

  #open(): void {
    if (this.#closing.signal.aborted) throw new StorageError("storage is closed");
  }

  /** Any error of a request, as a StorageError (limits as StorageLimitError). */
  #wrap(e: unknown, what: string): Error {
    return wrapError(e, what, this.#closing.signal.aborted, this.#o);
  }

  #entry(key: Key, kv: Json | undefined): Entry {
    if (kv === undefined) return { key, value: null, versionstamp: null };
    return { key, value: unpackValue(unb64(kv.value)), versionstamp: revToStamp(kv.mod_revision) };
  }

  /** Reads one key. */
  async get(key: Key): Promise<Entry> {
    return (await this.getMany([key]))[0]!;
  }

  /** Reads several keys at one revision. */
  async getMany(keys: readonly Key[]): Promise<Entry[]> {
    this.#open();
    const bytes = keys.map((k) => this.#key(k));
    return (await this.#readAt(bytes)).kvs.map((kv, i) => this.#entry(keys[i]!, kv));
  }

  /** Reads keys at one revision (in transactions of at most maxTxnOps reads). */
  async #readAt(keys: Uint8Array[]): Promise<{ kvs: (Json | undefined)[]; revision: bigint }> {
    const kvs: (Json | undefined)[] = [];
    let revision: string | undefined;
    const per = this.#o.maxTxnOps;
    try {
      for (let i = 0; i < keys.length || i === 0; i += per) {
        const group = keys.slice(i, i + per);
        const res = await this.#client.call("/v3/kv/txn", {
          success: group.map((k) => ({
            request_range: { key: b64(k), ...(revision ? { revision } : {}) },
          })),
        });
        revision ??= res.header.revision;
        for (const r of res.responses ?? []) kvs.push(r.response_range.kvs?.[0]);
      }
    } catch (e) {
      throw this.#wrap(e, "etcd read failed");
    }
    return { kvs, revision: BigInt(revision ?? 0) };
  }

  /** Reads a range at one revision, in key order (or reverse). */
  async list(selector: ListSelector, options: ListOptions = {}): Promise<Entry[]> {
    this.#open();
    const [lo, hi] = rangeOf(selector);
    const limit = Math.min(options.limit ?? this.limits.listLimitMax, this.limits.listLimitMax);
    if (limit <= 0) return [];
    const start = lo.length === 0 && this.#prefix.length === 0 ? new Uint8Array([0]) : lo;
    let res: Json;
    try {
      res = await this.#client.call("/v3/kv/range", {
        key: b64(concat(this.#prefix, start)),
        range_end: b64(concat(this.#prefix, hi)),
        limit: String(limit),
        ...(options.reverse ? { sort_order: "DESCEND", sort_target: "KEY" } : {}),
      });
    } catch (e) {
      throw this.#wrap(e, "etcd list failed");
    }
    const out: Entry[] = [];
    for (const kv of res.kvs ?? []) {
      const key = this.#unkey(unb64(kv.key));
      if (key !== undefined) out.push(this.#entry(key, kv));
    }
    return out;
  }

  /**
   * Applies `mutations` atomically if every check holds: one etcd transaction,
   * retried over the endpoints until its outcome is known (see the module doc).
   *
   * @throws {StorageLimitError} past `limits`, or past etcd's own (operations per
   *   transaction, request bytes).
   * @throws {StorageError} etcd refused it, or stayed unreachable for
   *   `retryDeadlineMs` (the message says whether the outcome is unknown).
   */
  async commit(checks: readonly Check[], mutations: readonly Mutation[]): Promise<CommitResult> {
    this.#open();
    checkCommitLimits(this.limits, checks, mutations);
    const plan = this.#plan(mutations);
    if (plan.appends.size === 0 && ![...plan.writes.values()].some((w) => w.sum)) {
      return await this.#commit(checks, plan);
    }
    // Commits of this handle that read-modify-write counters or sequences go one
    // at a time (concurrent ones would only fail each other's compares); those
    // waiting meanwhile go as one transaction where the rule of _etcd_group.ts
    // allows, and are committed alone when its checks fail.
    return await this.#group.commit(checks, mutations);
  }

  /**
   * Group commit's counts: transactions sent for commits with counters or
   * sequences, commits that went merged, merged transactions split again.
   *
   * @example
   * ```ts ignore
   * import { EtcdStorage } from "@murmur/murmur/durable/etcd";
   * await using db = await EtcdStorage.open({ endpoints: ["http://127.0.0.1:2379"] });
   * console.log(db.groupStats()); // { transactions: 0, merged: 0, splits: 0 }
   * ```
   */
  groupStats(): Readonly<GroupCommitStats> {
    return { ...this.#group.stats };
  }

  async #commit(checks: readonly Check[], plan: Plan): Promise<CommitResult> {
    const id = crypto.getRandomValues(new Uint8Array(16));
    const idKey = concat(this.#meta, utf8.encode("c"), id);
    const deadline = performance.now() + this.#o.retryDeadlineMs;
    let unknown = false;
    let conflicts = 0;
    let last: unknown;
    for (let attempt = 0;; attempt++) {
      this.#open();
      let txn: Json, watched: { key: Uint8Array; rev: string }[];
      let written: { key: Uint8Array; value: bigint }[];
      try {
        const lease = await this.#lease.id();
        await this.#learn(plan);
        ({ txn, watched, written } = this.#txn(checks, plan, idKey, lease));
      } catch (e) {
        throw this.#wrap(e, "etcd commit failed");
      }
      let res: Json;
      try {
        res = await this.#client.once("/v3/kv/txn", txn, this.#attemptMs(deadline));
      } catch (e) {
        last = e;
        if (e instanceof EtcdError && e.code === CODE_NOT_FOUND && /lease/.test(e.message)) {
          this.#lease.expired(); // a long pause or partition: a new one, then again
          continue;
        }
        const f = classify(e);
        if (f === "definite") throw this.#wrap(e, "etcd refused the commit");
        if (f === "unknown") unknown = true;
        this.#client.rotate();
        if (!await this.#client.pause(attempt, deadline)) break;
        continue;
      }
      if (res.succeeded) {
        this.#known.remember(written, res.header.revision);
        return { ok: true, versionstamp: revToStamp(res.header.revision) };
      }
      const responses = res.responses ?? [];
      const idKv = responses[0]?.response_range?.kvs?.[0];
      if (idKv !== undefined) {
        // An earlier attempt whose answer was lost did apply.
        const applied = unb64(idKv.value)[0] === ID_APPLIED;
        if (applied) this.#known.forget(plan);
        return applied ? { ok: true, versionstamp: revToStamp(idKv.mod_revision) } : { ok: false };
      }
      let moved = false;
      for (const [i, w] of watched.entries()) {
        const kv = responses[i + 1]?.response_range?.kvs?.[0];
        const rev = kv === undefined ? "0" : String(kv.mod_revision);
        if (rev !== w.rev) moved = true;
        this.#known.note(w.key, kv);
      }
      if (!moved) {
        // The checks failed. If a lost attempt is still in flight, fence it first.
        return unknown ? await this.#fence(idKey, deadline) : { ok: false };
      }
      if (++conflicts > this.#o.conflictRetriesMax) {
        throw new StorageError(
          `commit gave up after ${conflicts} conflicts on its counters or sequences (conflictRetriesMax)`,
        );
      }
    }
    if (unknown) {
      throw new StorageError(
        `the outcome of a commit is unknown: etcd did not answer within ${this.#o.retryDeadlineMs} ms ` +
          `(retryDeadlineMs); last error: ${(last as Error)?.message ?? last}`,
        { cause: last },
      );
    }
    throw this.#wrap(last, `etcd commit failed within ${this.#o.retryDeadlineMs} ms`);
  }

  #attemptMs(deadline: number): number {
    return Math.max(50, Math.min(this.#o.requestTimeoutMs, deadline - performance.now()));
  }

  /** Coalesces mutations into one write per key (etcd refuses two writes of a key in a transaction). */
  #plan(mutations: readonly Mutation[]): Plan {
    return planCommit(mutations, (k) => this.#key(k), this.#meta);
  }

  /** Reads the counters and sequences not known yet. */
  async #learn(plan: Plan): Promise<void> {
    const missing = this.#known.missing(plan);
    if (missing.length === 0) return;
    const { kvs } = await this.#readAt(missing);
    for (const [i, k] of missing.entries()) this.#known.note(k, kvs[i]);
  }

  /** The transaction of one attempt, and the counters and sequences it depends on. */
  #txn(
    checks: readonly Check[],
    plan: Plan,
    idKey: Uint8Array,
    lease: string,
  ): TxnOf {
    return buildTxn(checks, plan, idKey, lease, {
      known: this.#known.map,
      keyOf: (k) => this.#key(k),
      maxTxnOps: this.#o.maxTxnOps,
      maxRequestBytes: this.#o.maxRequestBytes,
    });
  }

  /**
   * After a lost answer and failed checks: writes the commit id as fenced
   * unless it is there, so the lost attempt can never apply; reports what did
   * happen.
   */
  async #fence(idKey: Uint8Array, deadline: number): Promise<CommitResult> {
    let last: unknown;
    for (let attempt = 0;; attempt++) {
      try {
        const lease = await this.#lease.id();
        const res = await this.#client.once("/v3/kv/txn", {
          compare: [{ key: b64(idKey), target: "MOD", result: "EQUAL", mod_revision: "0" }],
          success: [{
            request_put: { key: b64(idKey), value: b64(new Uint8Array([ID_FENCED])), lease },
          }],
          failure: [{ request_range: { key: b64(idKey) } }],
        }, this.#attemptMs(deadline));
        if (res.succeeded) return { ok: false };
        const kv = res.responses?.[0]?.response_range?.kvs?.[0];
        if (kv !== undefined && unb64(kv.value)[0] === ID_APPLIED) {
          return { ok: true, versionstamp: revToStamp(kv.mod_revision) };
        }
        return { ok: false };
      } catch (e) {
        last = e;
        if (e instanceof EtcdError && e.code === CODE_NOT_FOUND && /lease/.test(e.message)) {
          this.#lease.expired();
          continue;
        }
        if (classify(e) === "definite") throw this.#wrap(e, "etcd refused to fence a commit");
        this.#client.rotate();
        if (!await this.#client.pause(attempt, deadline)) break;
      }
    }
    throw new StorageError(
      `the outcome of a commit is unknown: etcd did not answer within ${this.#o.retryDeadlineMs} ms ` +
        `(retryDeadlineMs); last error: ${(last as Error)?.message ?? last}`,
      { cause: last },
    );
  }

  /**
   * Yields the entries of `keys` now, and again after any of them changes.
   * Watch streams on etcd wake it; what it yields always comes from a read
   * (at least every `watchPollMs`), so a lost stream costs latency, never a change.
   */
  async *watch(keys: readonly Key[], signal?: AbortSignal): AsyncIterable<Entry[]> {
    this.#open();
    const stop = signal ? AbortSignal.any([this.#closing.signal, signal]) : this.#closing.signal;
    const bytes = keys.map((k) => this.#key(k));
    const streams = new WakeStreams(this.#client, bytes, stop);
    const finished = Promise.withResolvers<void>();
    this.#watches.add(finished.promise);
    try {
      let last: string | undefined;
      let quiet = 0;
      while (!stop.aborted) {
        let read: { kvs: (Json | undefined)[]; revision: bigint };
        try {
          read = await this.#readAt(bytes);
        } catch (e) {
          if (stop.aborted) return;
          throw e;
        }
        const entries = read.kvs.map((kv, i) => this.#entry(keys[i]!, kv));
        const stamps = entries.map((e) => e.versionstamp ?? "-").join(",");
        const changed = stamps !== last;
        if (changed && last !== undefined && quiet > 0) {
          // A change the streams did not report: they may hang on a stopped member.
          await streams.restart();
        }
        if (changed) {
          last = stamps;
          yield entries;
        }
        streams.start(read.revision + 1n);
        const woke = await streams.wait(this.#o.watchPollMs);
        quiet = woke ? 0 : quiet + 1;
      }
    } finally {
      await streams.close();
      finished.resolve();
      this.#watches.delete(finished.promise);
    }
  }

  /** Closes the storage: pending watches end and the commit-id lease is revoked. */
  async close(): Promise<void> {
    if (this.#closing.signal.aborted) return;
    await this.#lease.close();
    this.#closing.abort(new StorageError("storage is closed"));
    await Promise.all(this.#watches);
    this.#httpClient?.close();
  }

  /** Same as `close()`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
