/**
 * The defaults of Plumtree's settings, named: the server, the core and the simulator read them from here.
 *
 * @module
 */

/**
 * Plumtree: random overlay neighbours besides the two ring neighbours (full mesh).
 *
 * @default 2
 */
export const DEFAULT_PLUMTREE_FANOUT = 2;

/**
 * Plumtree: wait after an IHAVE before grafting, in case the payload arrives eagerly.
 *
 * @default 200
 */
export const DEFAULT_GRAFT_TIMEOUT_MS = 200;

/**
 * Plumtree: wait before grafting again from the next announcer.
 *
 * @default 1000
 */
export const DEFAULT_GRAFT_RETRY_MS = 1000;

/**
 * Plumtree: grafts for one id before it is left to anti-entropy.
 *
 * @default 10
 */
export const DEFAULT_GRAFT_RETRIES_MAX = 10;

/**
 * Plumtree: lazy entries queued per peer; the oldest are dropped past it.
 *
 * @default 10000
 */
export const DEFAULT_LAZY_OUTSTANDING_MAX = 10_000;

/**
 * Plumtree: ids remembered for duplicate detection.
 *
 * @default 100000
 */
export const DEFAULT_IDS_REMEMBERED_MAX = 100_000;

/**
 * Plumtree: ids in one IHAVE frame sent.
 *
 * @default 1000
 */
export const DEFAULT_IHAVE_BATCH_MAX = 1000;

/**
 * Plumtree: ids accepted in one IHAVE frame received; a larger frame is dropped whole.
 *
 * @default 10000
 */
export const DEFAULT_IHAVE_IDS_MAX = 10_000;

/**
 * Plumtree: announced ids waiting for their payload, all peers together.
 *
 * @default 10000
 */
export const DEFAULT_MISSING_MAX = 10_000;

/**
 * Plumtree: announced ids waiting for their payload first announced by one peer.
 *
 * @default 2000
 */
export const DEFAULT_MISSING_PER_PEER_MAX = 2000;

/**
 * Plumtree: broadcast trees (one per root) kept; past it the least recently used is forgotten.
 *
 * @default 1024
 */
export const DEFAULT_ROOTS_MAX = 1024;

/**
 * Plumtree: a new neighbour is announced the ids delivered in this last stretch of time.
 *
 * @default 10000
 */
export const DEFAULT_CATCHUP_MS = 10_000;

/**
 * Plumtree: ids announced to a new neighbour at most (0 turns catch-up off).
 *
 * @default 1000
 */
export const DEFAULT_CATCHUP_IDS_MAX = 1000;

/**
 * Plumtree: ids delivered here that no neighbour is known to hold (sent while
 * this node had no neighbour, or announced only to neighbours that all went
 * away unacknowledged), kept to announce to every new neighbour until one
 * acknowledges them. Past it the oldest are dropped, counted in `lazyDropped`.
 *
 * @default 10000
 */
export const DEFAULT_UNSHARED_MAX = 10_000;

/**
 * Plumtree: a neighbour whose announcement shows a path this many rounds
 * shorter becomes the parent in that tree (the paper's optimization; 0: off).
 *
 * @default 2
 */
export const DEFAULT_OPTIMIZE_THRESHOLD = 2;

/**
 * Plumtree: period of the IHAVE flush (as in Partisan).
 *
 * @default 1000
 */
export const DEFAULT_LAZY_TICK_MS = 1000;

/**
 * Plumtree: period of the IHAVE flush for `DEFAULT_REPAIR_WINDOW_MS` after a
 * node's neighbours changed (trees under repair).
 *
 * @default 200
 */
export const DEFAULT_REPAIR_TICK_MS = 200;

/**
 * Plumtree: how long after a neighbour change IHAVEs flush at the repair pace.
 *
 * @default 5000
 */
export const DEFAULT_REPAIR_WINDOW_MS = 5000;

/**
 * Plumtree: period of anti-entropy exchanges (as in Partisan).
 *
 * @default 10000
 */
export const DEFAULT_EXCHANGE_TICK_MS = 10_000;
/** Plumtree: how often a node on a partial view checks for an eclipse (`eclipseCheckMs`). */
export const DEFAULT_ECLIPSE_CHECK_MS = 30_000;

/**
 * Plumtree: exchanges running at once.
 *
 * @default 1
 */
export const DEFAULT_EXCHANGES_MAX = 1;

/**
 * Plumtree: messages waiting while a handler's promise is pending; past it they are dropped.
 *
 * @default 10000
 */
export const DEFAULT_INBOX_MAX = 10_000;
