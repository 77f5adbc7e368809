/**
 * What a commit costs in the units of {@linkcode StorageLimits}, counted the
 * way the strictest built-in backend does, and the checks that refuse a
 * commit past a limit with {@linkcode StorageLimitError}. For backend authors.
 *
 * @module
 */

import {
  APPEND_STAMP_BYTES_MAX,
  type Check,
  type Key,
  type Mutation,
  StorageLimitError,
  type StorageLimits,
} from "./storage.ts";
import { encodeKey } from "./keys.ts";

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
