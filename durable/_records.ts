// The key layout and records of a durable server, and small helpers shared by
// its parts. Module-private.
//
// Every key of a server lives under [...tenant, TENANT_MARK]: a tenant may not
// contain the mark, so no server's keys are under another's (tenants ["a"] and
// ["a", "b"] are disjoint, and kill touches its own keys only).

import { decodeValue, encodeForWire } from "../base/codec.ts";
import type { Action, CallResult, NoReplyResult } from "./behaviour.ts";
import { type Entry, type Key, type Mutation, StorageError } from "./storage.ts";

/** The reserved key part after a tenant, before a server's own keys. */
export const TENANT_MARK = "\u0000murmur.durable";

export const K_STATE: Key = ["state"];
export const K_QUEUE: Key = ["queue"];
/** Bumped by every enqueue: what consumers watch, and what inline calls check. */
export const K_QV: Key = ["qv"];
/** Bumped by every commit that takes messages off the queue: consumers serialize on it. */
export const K_QCONS: Key = ["qcons"];
/** Messages in the queue (mod 2^64: dequeues add 2^64 - n). */
export const K_QLEN: Key = ["qlen"];
export const K_LOCK: Key = ["lock"];
/** The lease of a consumer whose callbacks run for a while. */
export const K_LEASE: Key = ["lease"];
/** Written when the server is created; kill deletes it, so every handle of it stops. */
export const K_EPOCH: Key = ["epoch"];
export const K_DLQ: Key = ["dlq"];
export const K_REPLY = "reply";

export const qlenAdd = (n: number): Mutation => ({
  type: "sum",
  key: K_QLEN,
  value: BigInt.asUintN(64, BigInt(n)),
});

/** Queue record: [kind 0 call | 1 cast, msg, replyId | null, attempts]. */
export type QueueRecord = [0 | 1, unknown, string | null, number];
/**
 * Reply record: [status, value, expiresAt (the caller's wall clock), lifetime
 * ms (from its writing; absent in records of older versions)]; status 0
 * pending, 1 ok, 2 dead-lettered ([attempts, name, message]), 3 stopped
 * without a reply (reason).
 */
export type ReplyRecord = [0 | 1 | 2 | 3, unknown, number, number?];
/** Lock record: [owner, kind 0 call | 1 cast | 2 info, msg, replyId | null, attempts, renewals]. */
export type LockRecord = [string, 0 | 1 | 2, unknown, string | null, number, number];
/** Lease record: [owner, renewals]. */
export type LeaseRecord = [string, number];

export function enc(v: unknown, what = "value"): Uint8Array {
  return encodeForWire(v, what);
}

export function dec<T>(e: Entry): T {
  if (!(e.value instanceof Uint8Array)) {
    throw new StorageError(`key ${JSON.stringify(e.key)} does not hold bytes`);
  }
  return decodeValue(e.value) as T;
}

export function randomId(): string {
  return Array.from(
    crypto.getRandomValues(new Uint8Array(12)),
    (b) => b.toString(16).padStart(2, "0"),
  ).join("");
}

export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** A callback's result, checked: a result without a state is a failure, not a stall. */
export interface Unpacked<S, R> {
  state: S;
  reply: R | undefined;
  actions: Action<S>[];
  lock: boolean;
  stop: unknown;
}

export function unpack<S, R>(
  result: CallResult<S, R> | NoReplyResult<S>,
  callback: string,
): Unpacked<S, R> {
  if (typeof result !== "object" || result === null) {
    throw new TypeError(`${callback} must return an object, got ${String(result)}`);
  }
  if ("lock" in result) {
    return { state: result.lock, reply: undefined, actions: [], lock: true, stop: undefined };
  }
  if (!("state" in result)) {
    const keys = Object.keys(result);
    throw new TypeError(
      `${callback} returned no state (nor lock); its keys: ${
        keys.length ? keys.join(", ") : "none"
      }`,
    );
  }
  const r = result as { state: S; reply?: R; actions?: Action<S>[]; stop?: unknown };
  if (r.actions !== undefined && !Array.isArray(r.actions)) {
    throw new TypeError(`${callback} returned actions that are not an array`);
  }
  return {
    state: r.state,
    reply: r.reply,
    actions: r.actions ?? [],
    lock: false,
    stop: "stop" in r ? (r.stop ?? "normal") : undefined,
  };
}

/**
 * Tracks how long a key has shown the same versionstamp, on this process's
 * monotonic clock: a lease or lock is taken over only when its record has not
 * changed for the timeout as the taker measures it (no wall clocks compared).
 */
export class Staleness {
  readonly #seen = new Map<string, { vs: string; since: number }>();

  /** True once `name` has shown versionstamp `vs` for at least `ms`. */
  stale(name: string, vs: string, now: number, ms: number): boolean {
    const s = this.#seen.get(name);
    if (s === undefined || s.vs !== vs) {
      this.#seen.set(name, { vs, since: now });
      return ms <= 0;
    }
    return now - s.since >= ms;
  }

  /** Milliseconds until `name` could be stale, if it keeps `vs`. */
  remaining(name: string, now: number, ms: number): number {
    const s = this.#seen.get(name);
    return s === undefined ? ms : Math.max(0, ms - (now - s.since));
  }

  forget(name: string): void {
    this.#seen.delete(name);
  }
}
