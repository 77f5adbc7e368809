/**
 * A replicated last-writer-wins key/value store over Plumtree. Writes are
 * versioned with a hybrid logical clock (`[ms, counter, node]`); the highest
 * version of a key wins everywhere, deletes are tombstones. Its `exchange`
 * compares digests with one peer and repairs what either side missed.
 *
 * @module
 */

import { type Clock, systemClock } from "../base/clock.ts";
import { checkSendable } from "../base/codec.ts";
import type { Node } from "../membership/node.ts";
import type { BroadcastHandler, GraftResult } from "./handler.ts";
import type { Plumtree } from "./plumtree.ts";

/** A version: `[ms, counter, node]`, ordered lexicographically. */
export type KvVersion = [number, number, string];
/** A broadcast write. */
export interface KvWrite {
  /** The key. */
  key: string;
  /** The value (ignored for a delete). */
  value: unknown;
  /** True for a delete (a tombstone). */
  deleted: boolean;
  /** The write's version. */
  version: KvVersion;
}
/** The id of a write: `[key, version]`. */
export type KvId = [string, KvVersion];
/** The payload of a write: `[value, deleted]`. */
export type KvPayload = [unknown, boolean];

/** Options of {@linkcode KvHandler}. */
export interface KvHandlerOptions {
  /** Channel (default: Plumtree's). */
  channel?: string;
  /** Version clock (default the system clock). */
  clock?: Clock;
  /**
   * Keys per exchange message.
   *
   * @default 10000
   */
  exchangeKeysMax?: number;
}

/**
 * Compares versions: negative, zero or positive.
 *
 * @example
 * ```ts
 * import { compareVersions } from "@murmur/murmur/broadcast";
 * console.log(compareVersions([1, 0, "a"], [1, 0, "b"]) < 0); // true
 * ```
 */
export function compareVersions(a: KvVersion, b: KvVersion): number {
  if (a[0] !== b[0]) return a[0] - b[0];
  if (a[1] !== b[1]) return a[1] - b[1];
  return a[2] < b[2] ? -1 : a[2] > b[2] ? 1 : 0;
}

function isVersion(v: unknown): v is KvVersion {
  return Array.isArray(v) && v.length === 3 && typeof v[0] === "number" &&
    typeof v[1] === "number" &&
    typeof v[2] === "string";
}

interface Cell {
  version: KvVersion;
  value: unknown;
  deleted: boolean;
}

/**
 * The LWW key/value handler. Create one per node with the same name, pass it
 * to `Plumtree.start`, then write with `put` / `delete`.
 *
 * @example
 * ```ts
 * import { KvHandler } from "@murmur/murmur/broadcast";
 * import { Node } from "@murmur/murmur/membership";
 * await using node = await Node.start({ name: "a", cookie: "c" });
 * const kv = new KvHandler("config", node);
 * kv.merge(["x", [1, 0, "b"]], [42, false]);
 * console.log(kv.get("x")); // 42
 * kv.close();
 * ```
 */
export class KvHandler implements BroadcastHandler<KvWrite, KvId, KvPayload> {
  readonly name: string;
  readonly channel?: string;
  readonly #node: Node;
  readonly #clock: Clock;
  readonly #keysMax: number;
  readonly #cells = new Map<string, Cell>();
  readonly #listeners = new Set<(key: string, value: unknown, deleted: boolean) => void>();
  #lastMs = 0;
  #counter = 0;
  readonly #unregister: () => void;

  /** Creates the handler on `node` (it registers the endpoint its exchanges use). */
  constructor(name: string, node: Node, options: KvHandlerOptions = {}) {
    if (typeof name !== "string" || name.length === 0) {
      throw new TypeError("name must be a non-empty string");
    }
    this.name = name;
    if (options.channel !== undefined) this.channel = options.channel;
    this.#node = node;
    this.#clock = options.clock ?? systemClock;
    this.#keysMax = options.exchangeKeysMax ?? 10_000;
    this.#unregister = node.register(`murmur.kv.${name}`, (msg) => this.#serveExchange(msg));
  }

  /**
   * Writes `value` at `key` everywhere (last writer wins).
   *
   * @throws {TypeError} (rejects) a key that is not a string, or a value that
   *   cannot cross the wire (naming its path: `value.run is a function`);
   *   nothing changes here then.
   */
  async put(plumtree: Plumtree, key: string, value: unknown): Promise<void> {
    if (typeof key !== "string") throw new TypeError("keys are strings");
    checkSendable(value, "value", `cannot put "${key}" in "${this.name}"`);
    await plumtree.broadcast(
      { key, value, deleted: false, version: this.#nextVersion() },
      this.name,
    );
  }

  /** Deletes `key` everywhere. */
  async delete(plumtree: Plumtree, key: string): Promise<void> {
    if (typeof key !== "string") throw new TypeError("keys are strings");
    await plumtree.broadcast(
      { key, value: null, deleted: true, version: this.#nextVersion() },
      this.name,
    );
  }

  /** The value at `key`, or undefined. */
  get(key: string): unknown {
    const c = this.#cells.get(key);
    return c === undefined || c.deleted ? undefined : c.value;
  }

  /** Every live entry, sorted by key. */
  entries(): [string, unknown][] {
    return [...this.#cells].filter(([, c]) => !c.deleted).map(([k, c]) =>
      [k, c.value] as [string, unknown]
    ).sort((
      a,
      b,
    ) => (a[0] < b[0] ? -1 : 1));
  }

  /** A digest of the whole store (keys, versions, tombstones), for comparing replicas. */
  digest(): [string, KvVersion, boolean][] {
    return [...this.#cells].map(([k, c]) =>
      [k, c.version, c.deleted] as [string, KvVersion, boolean]
    ).sort((a, b) => a[0] < b[0] ? -1 : 1);
  }

  /** Calls `fn(key, value, deleted)` after each change merged here. Returns an unsubscribe function. */
  onChange(fn: (key: string, value: unknown, deleted: boolean) => void): () => void {
    this.#listeners.add(fn);
    return () => this.#listeners.delete(fn);
  }

  /** Unregisters the exchange endpoint. */
  close(): void {
    this.#unregister();
  }

  #nextVersion(): KvVersion {
    const now = Math.floor(this.#clock.wallNow());
    if (now > this.#lastMs) {
      this.#lastMs = now;
      this.#counter = 0;
    } else this.#counter++;
    // Also past everything seen, so that a write here wins over what it read.
    return [this.#lastMs, this.#counter, this.#node.name];
  }

  #observe(v: KvVersion): void {
    if (v[0] > this.#lastMs) {
      this.#lastMs = v[0];
      this.#counter = v[1];
    } else if (v[0] === this.#lastMs && v[1] > this.#counter) this.#counter = v[1];
  }

  /** `[key, version]` and `[value, deleted]`. */
  broadcastData(w: KvWrite): { id: KvId; payload: KvPayload } {
    return { id: [w.key, w.version], payload: [w.value, w.deleted] };
  }

  /** Stores the write when its version is higher than the key's. */
  merge(id: KvId, payload: KvPayload): boolean {
    if (
      !Array.isArray(id) || typeof id[0] !== "string" || !isVersion(id[1]) ||
      !Array.isArray(payload)
    ) {
      throw new TypeError("malformed kv write");
    }
    const [key, version] = id;
    const cur = this.#cells.get(key);
    if (cur !== undefined && compareVersions(version, cur.version) <= 0) return false;
    this.#observe(version);
    this.#cells.set(key, { version, value: payload[0], deleted: payload[1] === true });
    for (const l of this.#listeners) {
      try {
        l(key, payload[0], payload[1] === true);
      } catch { /* a listener's failure is its own */ }
    }
    return true;
  }

  /** Stale when this version or a newer one of the key is here. */
  isStale(id: KvId): boolean {
    const cur = this.#cells.get(id[0]);
    return cur !== undefined && isVersion(id[1]) && compareVersions(id[1], cur.version) <= 0;
  }

  /** The write if it is the one held; stale if a newer one is. */
  graft(id: KvId): GraftResult<KvPayload> {
    const cur = this.#cells.get(id[0]);
    if (cur === undefined || !isVersion(id[1])) return { error: "unknown key" };
    const c = compareVersions(id[1], cur.version);
    if (c === 0) return { ok: [cur.value, cur.deleted] };
    return c < 0 ? "stale" : { error: "not received yet" };
  }

  /**
   * Anti-entropy with `peer`: sends this digest; the peer answers with the
   * writes it has newer and the keys it wants; those are sent back.
   */
  async exchange(peer: string, signal: AbortSignal): Promise<void> {
    const digest = this.digest().slice(0, this.#keysMax).map(([k, v]) => [k, v]);
    const answer = await this.#node.call(peer, `murmur.kv.${this.name}`, ["digest", digest], {
      signal,
    }) as [
      [string, KvVersion, unknown, boolean][],
      string[],
    ];
    signal.throwIfAborted();
    const [theirs, wanted] = answer;
    for (const [k, v, value, deleted] of theirs) this.merge([k, v], [value, deleted]);
    const push: [string, KvVersion, unknown, boolean][] = [];
    for (const k of wanted.slice(0, this.#keysMax)) {
      const c = this.#cells.get(k);
      if (c !== undefined) push.push([k, c.version, c.value, c.deleted]);
    }
    if (push.length > 0) {
      await this.#node.call(peer, `murmur.kv.${this.name}`, ["push", push], { signal });
    }
  }

  #serveExchange(msg: unknown): unknown {
    if (!Array.isArray(msg) || msg.length !== 2 || !Array.isArray(msg[1])) {
      throw new TypeError("bad exchange request");
    }
    if (msg[0] === "digest") {
      const theirs = new Map<string, KvVersion>();
      for (const e of (msg[1] as unknown[]).slice(0, this.#keysMax)) {
        if (Array.isArray(e) && typeof e[0] === "string" && isVersion(e[1])) theirs.set(e[0], e[1]);
      }
      const newer: [string, KvVersion, unknown, boolean][] = [];
      for (const [k, c] of this.#cells) {
        const v = theirs.get(k);
        if (v === undefined || compareVersions(c.version, v) > 0) {
          newer.push([k, c.version, c.value, c.deleted]);
        }
      }
      const wanted: string[] = [];
      for (const [k, v] of theirs) {
        const c = this.#cells.get(k);
        if (c === undefined || compareVersions(v, c.version) > 0) wanted.push(k);
      }
      return [newer.slice(0, this.#keysMax), wanted];
    }
    if (msg[0] === "push") {
      for (const e of (msg[1] as unknown[]).slice(0, this.#keysMax)) {
        if (Array.isArray(e) && typeof e[0] === "string" && isVersion(e[1])) {
          this.merge([e[0], e[1]], [e[2], e[3] === true]);
        }
      }
      return true;
    }
    throw new TypeError("bad exchange request");
  }
}
