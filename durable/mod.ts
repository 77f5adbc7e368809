/**
 * Durable servers and the storage they live in: the `Storage` interface, its
 * memory and Deno KV backends (FoundationDB is `@murmur/murmur/durable/foundationdb`),
 * and `testStorage`, the conformance suite.
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

export * from "./atomic.ts";
export * from "./keys.ts";
export * from "./limits.ts";
export * from "./storage.ts";
export * from "./memory_storage.ts";
export * from "./denokv_storage.ts";
export * from "./conformance.ts";
export * from "./errors.ts";
export * from "./server.ts";
