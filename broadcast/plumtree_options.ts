/**
 * The options of `PlumtreeCore`: its timers and every bound of its
 * per-peer structures (what is shed past each is counted in its stats).
 *
 * @module
 */

import type { Random } from "../base/clock.ts";
import * as D from "./defaults.ts";

/** Options of `PlumtreeCore`. Every per-peer structure has a bound; what is shed is counted. */
export interface PlumtreeCoreOptions {
  /**
   * Random overlay neighbours besides the two ring neighbours.
   *
   * @default 2
   */
  fanout?: number;
  /**
   * Wait after an IHAVE before grafting, in case the payload arrives eagerly.
   *
   * @default 200
   */
  graftTimeoutMs?: number;
  /**
   * Wait before grafting again from the next announcer.
   *
   * @default 1000
   */
  graftRetryMs?: number;
  /**
   * Grafts for one id before giving it up to anti-entropy.
   *
   * @default 10
   */
  graftRetriesMax?: number;
  /**
   * Lazy entries queued per peer; the oldest are dropped past it.
   *
   * @default 10000
   */
  lazyOutstandingMax?: number;
  /**
   * Ids remembered for duplicate detection.
   *
   * @default 100000
   */
  idsRememberedMax?: number;
  /**
   * Ids in one IHAVE frame sent.
   *
   * @default 1000
   */
  ihaveBatchMax?: number;
  /**
   * Ids accepted in one IHAVE frame received; a larger frame is dropped whole.
   *
   * @default 10000
   */
  ihaveIdsMax?: number;
  /**
   * Announced ids waiting for their payload (a graft), all peers together; past
   * it the oldest is forgotten.
   *
   * @default 10000
   */
  missingMax?: number;
  /**
   * Announced ids waiting for their payload first announced by one peer; past it that peer's new ones are dropped.
   *
   * @default 2000
   */
  missingPerPeerMax?: number;
  /**
   * Broadcast trees (one per root) kept; past it the least recently used is forgotten.
   *
   * @default 1024
   */
  rootsMax?: number;
  /**
   * A new neighbour is announced the ids delivered here in the last `catchupMs`
   * (default 10000 ms), at most `catchupIdsMax` (default 1000): a node that
   * joins, or reconnects after its neighbours failed, grafts what it missed.
   */
  catchupMs?: number;
  /** See `catchupMs` (default 1000; 0 turns catch-up off). */
  catchupIdsMax?: number;
  /**
   * Ids delivered here that no neighbour is known to hold: broadcast while
   * this node had no neighbour (cut off), or announced only to neighbours that
   * all went away without acknowledging them. They are announced to every new
   * neighbour until one acknowledges them, however long the node was cut off.
   * Past this bound the oldest are dropped (counted in `lazyDropped`).
   *
   * @default 10000
   */
  unsharedMax?: number;
  /**
   * The paper's tree optimization: when a neighbour announces an id delivered
   * here with a round at least this much smaller than the round it came with,
   * that neighbour becomes this node's parent in the id's tree (ADOPT to it,
   * PRUNE to the old parent), so that paths do not drift longer as trees are
   * repaired and reused. 0 turns it off.
   *
   * @default 2
   */
  optimizeThreshold?: number;
  /**
   * Period of the IHAVE flush, as in Partisan (`lazyTickDue` keeps it).
   *
   * @default 1000
   */
  lazyTickMs?: number;
  /**
   * Period of the IHAVE flush for `repairWindowMs` after this node's
   * neighbours changed (one went, or one came): a node whose tree parent
   * failed learns what it missed from its other neighbours' IHAVEs, so while
   * the overlay repairs itself they go out at this pace, not `lazyTickMs`.
   *
   * @default 200
   */
  repairTickMs?: number;
  /**
   * How long after a neighbour change IHAVEs flush every `repairTickMs`.
   *
   * @default 5000
   */
  repairWindowMs?: number;
  /** Randomness for overlay choices. */
  random: Random;
}

/** `PlumtreeCoreOptions` with every default filled in, checked. */
export type ResolvedCoreOptions = Required<PlumtreeCoreOptions>;

/**
 * Fills in the defaults of `o` and checks every value, throwing a
 * `RangeError` that names the first bad one.
 *
 * @example
 * ```ts
 * import { seededRandom } from "../base/clock.ts";
 * import { resolveCoreOptions } from "./plumtree_options.ts";
 * console.log(resolveCoreOptions({ random: seededRandom(1) }).lazyTickMs); // 1000
 * ```
 */
export function resolveCoreOptions(o: PlumtreeCoreOptions): ResolvedCoreOptions {
  const r: ResolvedCoreOptions = {
    fanout: o.fanout ?? D.DEFAULT_PLUMTREE_FANOUT,
    graftTimeoutMs: o.graftTimeoutMs ?? D.DEFAULT_GRAFT_TIMEOUT_MS,
    graftRetryMs: o.graftRetryMs ?? D.DEFAULT_GRAFT_RETRY_MS,
    graftRetriesMax: o.graftRetriesMax ?? D.DEFAULT_GRAFT_RETRIES_MAX,
    lazyOutstandingMax: o.lazyOutstandingMax ?? D.DEFAULT_LAZY_OUTSTANDING_MAX,
    idsRememberedMax: o.idsRememberedMax ?? D.DEFAULT_IDS_REMEMBERED_MAX,
    ihaveBatchMax: o.ihaveBatchMax ?? D.DEFAULT_IHAVE_BATCH_MAX,
    ihaveIdsMax: o.ihaveIdsMax ?? D.DEFAULT_IHAVE_IDS_MAX,
    missingMax: o.missingMax ?? D.DEFAULT_MISSING_MAX,
    missingPerPeerMax: o.missingPerPeerMax ?? D.DEFAULT_MISSING_PER_PEER_MAX,
    rootsMax: o.rootsMax ?? D.DEFAULT_ROOTS_MAX,
    catchupMs: o.catchupMs ?? D.DEFAULT_CATCHUP_MS,
    catchupIdsMax: o.catchupIdsMax ?? D.DEFAULT_CATCHUP_IDS_MAX,
    unsharedMax: o.unsharedMax ?? D.DEFAULT_UNSHARED_MAX,
    optimizeThreshold: o.optimizeThreshold ?? D.DEFAULT_OPTIMIZE_THRESHOLD,
    lazyTickMs: o.lazyTickMs ?? D.DEFAULT_LAZY_TICK_MS,
    repairTickMs: o.repairTickMs ?? D.DEFAULT_REPAIR_TICK_MS,
    repairWindowMs: o.repairWindowMs ?? D.DEFAULT_REPAIR_WINDOW_MS,
    random: o.random,
  };
  for (const k of ["lazyTickMs", "repairTickMs", "repairWindowMs"] as const) {
    const v = r[k];
    if (!(v > 0 && Number.isFinite(v))) throw new RangeError(`${k} must be > 0, got ${v}`);
  }
  if (!Number.isInteger(r.catchupIdsMax) || r.catchupIdsMax < 0) {
    throw new RangeError(`catchupIdsMax must be a non-negative integer, got ${r.catchupIdsMax}`);
  }
  if (!(r.catchupMs >= 0)) {
    throw new RangeError(`catchupMs must be non-negative, got ${r.catchupMs}`);
  }
  for (const k of ["fanout", "graftRetriesMax", "optimizeThreshold"] as const) {
    const v = r[k];
    if (!Number.isInteger(v) || v < 0) {
      throw new RangeError(`${k} must be a non-negative integer, got ${v}`);
    }
  }
  for (
    const k of [
      "lazyOutstandingMax",
      "idsRememberedMax",
      "ihaveBatchMax",
      "ihaveIdsMax",
      "missingMax",
      "missingPerPeerMax",
      "rootsMax",
      "unsharedMax",
    ] as const
  ) {
    const v = r[k];
    if (!Number.isInteger(v) || v < 1) {
      throw new RangeError(`${k} must be a positive integer, got ${v}`);
    }
  }
  return r;
}
