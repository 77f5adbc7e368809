/**
 * Broadcast: Plumtree (epidemic broadcast trees) on a node, the handler
 * contract, and the built-in heartbeat and replicated key/value handlers. The
 * pure core and its dispatch are in `@murmur/murmur/protocol`.
 *
 * @example
 * ```ts
 * import { Node } from "@murmur/murmur/membership";
 * import { HeartbeatHandler, Plumtree } from "@murmur/murmur/broadcast";
 * await using node = await Node.start({ name: "a", cookie: "c" });
 * await using pt = await Plumtree.start(node, { handlers: [new HeartbeatHandler("a")] });
 * console.log(pt.broadcastMembers()); // [ "a" ]
 * ```
 *
 * @module
 */

export {
  type DeliveryObservation,
  type DeliveryObserver,
  type ExchangeInfo,
  type ExchangeSelector,
  Plumtree,
  PLUMTREE_ENDPOINT,
  type PlumtreeOptions,
  type PlumtreePending,
  type PlumtreeServerStats,
} from "./plumtree.ts";
export type { PlumtreeCoreOptions } from "./plumtree_core.ts";
export type { PlumtreeStats } from "./wire.ts";
export type { BroadcastHandler, BroadcastServer, GraftResult } from "./handler.ts";
export {
  EVENT_NAME_LENGTH_MAX,
  EVENT_PAYLOAD_LENGTH_MAX,
  EVENTS_REMEMBERED_MAX,
  type UserEvent,
  type UserEventPayload,
  UserEvents,
} from "./events.ts";
export {
  DEFAULT_HEARTBEAT_INTERVAL_MS,
  type Heartbeat,
  HeartbeatHandler,
  type HeartbeatId,
  type HeartbeatOptions,
} from "./heartbeat.ts";
export {
  compareVersions,
  KvHandler,
  type KvHandlerOptions,
  type KvId,
  type KvPayload,
  type KvVersion,
  type KvWrite,
} from "./kv.ts";
export {
  DEFAULT_CATCHUP_IDS_MAX,
  DEFAULT_CATCHUP_MS,
  DEFAULT_EXCHANGE_TICK_MS,
  DEFAULT_EXCHANGES_MAX,
  DEFAULT_GRAFT_RETRIES_MAX,
  DEFAULT_GRAFT_RETRY_MS,
  DEFAULT_GRAFT_TIMEOUT_MS,
  DEFAULT_IDS_REMEMBERED_MAX,
  DEFAULT_IHAVE_BATCH_MAX,
  DEFAULT_IHAVE_IDS_MAX,
  DEFAULT_INBOX_MAX,
  DEFAULT_LAZY_OUTSTANDING_MAX,
  DEFAULT_LAZY_TICK_MS,
  DEFAULT_MISSING_MAX,
  DEFAULT_MISSING_PER_PEER_MAX,
  DEFAULT_PLUMTREE_FANOUT,
  DEFAULT_ROOTS_MAX,
} from "./defaults.ts";
