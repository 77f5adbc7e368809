/**
 * Plumtree broadcast (epidemic broadcast trees) on murmur nodes, its handler
 * contract, and two built-in handlers: heartbeats and a replicated
 * last-writer-wins key/value store.
 *
 * @example
 * ```ts
 * import { HeartbeatHandler } from "@murmur/murmur/broadcast";
 * const hb = new HeartbeatHandler("a");
 * console.log(hb.name); // heartbeat
 * ```
 *
 * @module
 */

export * from "./handler.ts";
export * from "./plumtree_core.ts";
export * from "./plumtree.ts";
export * from "./heartbeat.ts";
export * from "./kv.ts";
