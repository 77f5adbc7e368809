/**
 * Data publishers' named defaults: each limit and period a publisher over a
 * partial view starts with when its options leave it out.
 *
 * @example
 * ```ts
 * import { DEFAULT_SYNC_INTERVAL_MS } from "@murmur/murmur/publisher";
 * console.log(DEFAULT_SYNC_INTERVAL_MS); // 2000
 * ```
 *
 * @module
 */

/**
 * Period of the anti-entropy round (full mesh: the sequence tick; overlay: a
 * digest to one random neighbour).
 *
 * @default 2000
 */
export const DEFAULT_SYNC_INTERVAL_MS = 2000;

/**
 * How long a removed origin's tombstone is kept (late copies of its pushes
 * and entries cannot bring it back meanwhile); also how long a module version
 * nobody was seen running is still translated for.
 *
 * @default 600000
 */
export const DEFAULT_TOMBSTONE_MS = 600_000;

/**
 * Origins (live and tombstones) a publisher keeps per scope; past it the
 * oldest tombstone goes, and with none, a new origin is refused.
 *
 * @default 100000
 */
export const DEFAULT_ORIGINS_MAX = 100_000;

/**
 * Updates of one origin kept while an earlier one is missing; past it they are
 * dropped and anti-entropy brings the origin's full data.
 *
 * @default 64
 */
export const DEFAULT_FUTURE_MAX = 64;

/**
 * Pushes kept per scope to answer a neighbour's graft.
 *
 * @default 1024
 */
export const DEFAULT_RECENT_MAX = 1024;

/**
 * Buckets compared per anti-entropy message (of 64); more follow in the next.
 *
 * @default 16
 */
export const DEFAULT_SUMMARY_BUCKETS_MAX = 16;

/**
 * Origins' full data per anti-entropy message.
 *
 * @default 64
 */
export const DEFAULT_FULL_BATCH_MAX = 64;

/**
 * Module versions an origin translates its updates for (the most recently
 * seen).
 *
 * @default 16
 */
export const DEFAULT_VERSIONS_MAX = 16;

/**
 * Period of the liveness probe of one origin that is not a neighbour (round
 * robin over the origins shown).
 *
 * @default 4000
 */
export const DEFAULT_PROBE_INTERVAL_MS = 4000;
