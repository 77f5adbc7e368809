/**
 * Durable servers and the storage they live in: the `Storage` interface, its
 * memory and Deno KV backends (FoundationDB is `@murmur/murmur/durable/foundationdb`),
 * and the helpers backend authors need (keys, limits, atomic). The
conformance suite `testStorage` is in `@murmur/murmur/testing`.
 *
 * @example
 * ```ts
 * import { atomic, MemoryStorage } from "@murmur/murmur/durable";
 * await using db = new MemoryStorage();
 * await atomic(db).sum(["visits"], 1n).commit();
 * console.log((await db.get(["visits"])).value); // 1n
 * ```
 *
 * @module
 */

export { DEFAULT_STATE_BYTES_MAX, durableKeyPrefix, DurableServer } from "./server.ts";
export type {
  Action,
  CallResult,
  DeadLetter,
  DurableBehaviour,
  DurableServerOptions,
  DurableServerStats,
  DurableServerStatus,
  From,
  LockedEvent,
  NoReplyResult,
} from "./behaviour.ts";
export {
  CallbackTimeoutError,
  DeadLetterError,
  DurableKilledError,
  DurableStoppedError,
  DurableTimeoutError,
  StateTooLargeError,
} from "./errors.ts";
export {
  APPEND_STAMP_BYTES_MAX,
  type Check,
  type CommitResult,
  type Entry,
  type Key,
  type KeyPart,
  type ListOptions,
  type ListSelector,
  type Mutation,
  ORDER_STAMP_BYTES,
  OrderStamp,
  type Storage,
  StorageError,
  StorageLimitError,
  type StorageLimits,
  type Value,
} from "./storage.ts";
export { MemoryStorage, type MemoryStorageOptions, rangeOf } from "./memory_storage.ts";
export { DenoKvStorage, type DenoKvStorageOptions } from "./denokv_storage.ts";
// For backend authors.
export { atomic, AtomicOperation, subspace } from "./atomic.ts";
export { compareBytes, decodeKey, encodeKey, versionstampOf } from "./keys.ts";
export {
  checkCommitLimits,
  type CommitCost,
  commitCost,
  keyBytes,
  PORTABLE_LIMITS,
} from "./limits.ts";
