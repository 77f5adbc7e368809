/**
 * The defaults of every node option and membership strategy setting, named: the node, the strategies and the simulator read them from here.
 *
 * @module
 */

/**
 * Full mesh: period of anti-entropy gossip (a digest of the view to one random peer).
 *
 * @default 1000
 */
export const DEFAULT_GOSSIP_INTERVAL_MS = 1000;

/**
 * Full mesh: peers each change is pushed to at once.
 *
 * @default 4
 */
export const DEFAULT_GOSSIP_FANOUT = 4;

/**
 * Period of liveness (full mesh: one SWIM probe; HyParView: pings on idle
 * connections), and of the strategy's tick.
 *
 * @default 1000
 */
export const DEFAULT_PING_INTERVAL_MS = 1000;

/**
 * Full mesh: a suspicion not cleared this long makes a peer down. HyParView:
 * a peer silent this long is down.
 *
 * @default 5000
 */
export const DEFAULT_FAILURE_TIMEOUT_MS = 5000;

/**
 * A member down (or never reached) this long is removed by a tombstone.
 *
 * @default 60000
 */
export const DEFAULT_DEAD_MEMBER_REMOVE_MS = 60_000;

/**
 * Tombstones are forgotten after this long.
 *
 * @default 600000
 */
export const DEFAULT_TOMBSTONE_TTL_MS = 600_000;

/**
 * Period of probes of a few removed members (a partition may have healed).
 *
 * @default 10000
 */
export const DEFAULT_DEAD_PROBE_INTERVAL_MS = 10_000;

/**
 * An outgoing connect (connection and handshake) is abandoned after this long.
 *
 * @default 5000
 */
export const DEFAULT_CONNECT_TIMEOUT_MS = 5000;

/**
 * An incoming connection must finish its handshake within this long.
 *
 * @default 3000
 */
export const DEFAULT_HANDSHAKE_TIMEOUT_MS = 3000;

/**
 * First wait before a reconnection (exponential backoff with equal jitter).
 *
 * @default 100
 */
export const DEFAULT_RECONNECT_BACKOFF_MIN_MS = 100;

/**
 * Longest wait between reconnection attempts.
 *
 * @default 5000
 */
export const DEFAULT_RECONNECT_BACKOFF_MAX_MS = 5000;

/**
 * Period of retransmission of unacknowledged `ack: true` sends.
 *
 * @default 1000
 */
export const DEFAULT_RETRANSMIT_INTERVAL_MS = 1000;

/**
 * A call without a reply this long fails with `CallTimeoutError`.
 *
 * @default 5000
 */
export const DEFAULT_CALL_TIMEOUT_MS = 5000;

/**
 * An acknowledged send without an acknowledgement this long fails with `AckTimeoutError`.
 *
 * @default 30000
 */
export const DEFAULT_ACK_TIMEOUT_MS = 30_000;

/**
 * Bytes queued per connection before `send` waits (backpressure).
 *
 * @default 4194304
 */
export const DEFAULT_SEND_QUEUE_BYTES_MAX = 4 * 1024 * 1024;

/**
 * Bytes queued per connection past which an awaited `send` settles only once they drain (pacing).
 *
 * @default 262144
 */
export const DEFAULT_SEND_QUEUE_HIGH_WATER_BYTES = 256 * 1024;

/**
 * Senders waiting for room per connection; past it sends are dropped (or fail with `QueueFullError`).
 *
 * @default 1024
 */
export const DEFAULT_SEND_WAITERS_MAX = 1024;

/**
 * Bytes written per batch on a connection.
 *
 * @default 262144
 */
export const DEFAULT_WRITE_BATCH_BYTES_MAX = 256 * 1024;

/**
 * Calls waiting for a reply; past it calls fail with `QueueFullError`.
 *
 * @default 65536
 */
export const DEFAULT_CALLS_OUTSTANDING_MAX = 65536;

/**
 * Acknowledged sends waiting for their acknowledgement; past it they fail with `QueueFullError`.
 *
 * @default 65536
 */
export const DEFAULT_ACKS_OUTSTANDING_MAX = 65536;

/**
 * Bytes of unacknowledged sends per peer; past it acknowledged sends wait.
 *
 * @default 16777216
 */
export const DEFAULT_ACK_BYTES_MAX = 16 * 1024 * 1024;

/**
 * Acknowledged message ids remembered per sending process (duplicates suppressed).
 *
 * @default 65536
 */
export const DEFAULT_DEDUP_WINDOW = 65536;

/**
 * Open connections, both directions; past it new ones are refused.
 *
 * @default 4096
 */
export const DEFAULT_CONNECTIONS_MAX = 4096;

/**
 * Incoming handshakes in progress.
 *
 * @default 256
 */
export const DEFAULT_HANDSHAKES_PENDING_MAX = 256;

/**
 * Incoming handshakes in progress from one remote address.
 *
 * @default 32
 */
export const DEFAULT_HANDSHAKES_PENDING_PER_ADDRESS_MAX = 32;

/**
 * Outgoing connection attempts at once; more wait their turn.
 *
 * @default 64
 */
export const DEFAULT_CONNECTS_PENDING_MAX = 64;

/**
 * Causal delivery: labelled messages waiting for a predecessor, per label.
 *
 * @default 1000
 */
export const DEFAULT_CAUSAL_BUFFER_MAX = 1000;

/**
 * Causal delivery: how long a labelled message waits for a predecessor before it is skipped.
 *
 * @default 30000
 */
export const DEFAULT_CAUSAL_WAIT_MS = 30_000;

/**
 * Causal delivery: labels a node keeps state for.
 *
 * @default 1024
 */
export const DEFAULT_CAUSAL_LABELS_MAX = 1024;

/**
 * Causal delivery: entries of one label's vector clock and order buffer.
 *
 * @default 1024
 */
export const DEFAULT_CAUSAL_CLOCK_ENTRIES_MAX = 1024;

/**
 * Transitive sends and calls: hops of a routed message at most.
 *
 * @default 10
 */
export const DEFAULT_TRANSITIVE_HOPS_MAX = 10;

/**
 * HyParView: a direct connection (send or call to a non-neighbour) unused this long is closed.
 *
 * @default 30000
 */
export const DEFAULT_DIRECT_IDLE_MS = 30_000;

/**
 * HyParView: neighbours with open connections (the paper's default).
 *
 * @default 5
 */
export const DEFAULT_ACTIVE_VIEW_SIZE = 5;

/**
 * HyParView: addresses kept to replace neighbours (the paper's default).
 *
 * @default 30
 */
export const DEFAULT_PASSIVE_VIEW_SIZE = 30;

/**
 * HyParView: hops of a FORWARD_JOIN walk, and of a SHUFFLE walk.
 *
 * @default 6
 */
export const DEFAULT_ACTIVE_RANDOM_WALK_LENGTH = 6;

/**
 * HyParView: hop of a FORWARD_JOIN walk at which the joiner enters the passive view.
 *
 * @default 3
 */
export const DEFAULT_PASSIVE_RANDOM_WALK_LENGTH = 3;

/**
 * HyParView: period of SHUFFLE walks.
 *
 * @default 10000
 */
export const DEFAULT_SHUFFLE_INTERVAL_MS = 10_000;

/**
 * HyParView: period of a high-priority NEIGHBOR to one node lost to a failure.
 *
 * @default 10000
 */
export const DEFAULT_HPV_PROBE_INTERVAL_MS = 10_000;

/**
 * HyParView: nodes lost to a failure are probed for this long.
 *
 * @default 600000
 */
export const DEFAULT_LOST_TTL_MS = 600_000;

/**
 * HyParView: active-view entries sent in a SHUFFLE.
 *
 * @default 3
 */
export const DEFAULT_SHUFFLE_ACTIVE_COUNT = 3;

/**
 * HyParView: passive-view entries sent in a SHUFFLE.
 *
 * @default 4
 */
export const DEFAULT_SHUFFLE_PASSIVE_COUNT = 4;
