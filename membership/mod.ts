/**
 * Membership: nodes that find each other, authenticate, stay connected and
 * carry messages and calls between named endpoints, over pluggable transports
 * and membership strategies. The wire and the pure cores are in
 * `@murmur/murmur/protocol`; `MemoryNetwork` and the transport conformance
 * suite in `@murmur/murmur/testing`.
 *
 * @example
 * ```ts
 * import { Node } from "@murmur/murmur/membership";
 * await using a = await Node.start({ name: "a", cookie: "secret" });
 * await using b = await Node.start({ name: "b", cookie: "secret" });
 * await b.join(a.spec);
 * console.log(a.members()); // [ "a", "b" ]
 * ```
 *
 * @module
 */

export { Node } from "./node.ts";
export type { LeaveOnSignalsOptions } from "./_signals.ts";
export type { UpdateMembersResult } from "./_update_members.ts";
export type { DiscoveryOptions, DnsDiscoveryOptions } from "./discovery.ts";
export { DEFAULT_CHANNEL } from "./_config.ts";
export type {
  FullMeshOptions,
  HyParViewMembershipOptions,
  MembershipOptions,
  NodeOptions,
} from "./options.ts";
export type { CallOptions, Handler, MessageContext, SendOptions } from "./messaging.ts";
export { type Endpoint, endpoint, type RegisterOptions, type TypedHandler } from "./endpoint.ts";
export {
  type Schema,
  type SchemaIssue,
  type SchemaResult,
  ValidationError,
  type ValidationIssue,
} from "../base/schema.ts";
export type {
  CallObservation,
  CallObserver,
  JoinResult,
  MemberInfo,
  MemberState,
  NodeStats,
  PartitionInfo,
  UpDownCallback,
  UpDownOptions,
} from "./node_types.ts";
export {
  type ChannelOptions,
  CHANNELS_MAX,
  checkTags,
  isName,
  LISTEN_ADDRS_MAX,
  NAME_LENGTH_MAX,
  type NodeSpec,
  PARALLELISM_MAX,
  TAG_NAME_LENGTH_MAX,
  type Tags,
  TAGS_LENGTH_MAX,
  TAGS_MAX,
} from "./spec.ts";
export {
  DEFAULT_MEMBERS_MAX,
  DEFAULT_TOMBSTONES_MAX,
  type MemberEntry,
  type MembershipChange,
  type MemberStatus,
} from "./membership_state.ts";
export { MurmurError, ProtocolError } from "../base/errors.ts";
export {
  AckTimeoutError,
  CallTimeoutError,
  ClosedError,
  FrameTooLargeError,
  type HandshakeCode,
  HandshakeError,
  type HandshakeErrorOptions,
  NameConflictError,
  NodeDownError,
  QueueFullError,
  RemoteHandlerError,
  UnknownEndpointError,
  UnknownNodeError,
} from "./errors.ts";
export {
  type Clock,
  mathRandom,
  type Random,
  randomBytes,
  seededRandom,
  systemClock,
  type TimerId,
} from "../base/clock.ts";
export {
  consoleLogger,
  type ConsoleLoggerOptions,
  createConsoleLogger,
  type Logger,
  type LogLevel,
  type LogRecord,
  quietLogger,
} from "../base/logger.ts";
export { checkSendable, encodeForWire } from "../base/codec.ts";
// Extension points: transports and membership strategies.
export {
  type Address,
  type ConnectOptions,
  DEFAULT_FRAME_BYTES_MAX,
  encodeFrames,
  formatAddress,
  FRAME_HEADER_BYTES,
  type FrameConnection,
  type FrameListener,
  parseAddress,
  type Transport,
} from "./transport.ts";
export { TcpTransport, type TcpTransportOptions, type TlsOptions } from "./tcp_transport.ts";
export {
  type MembershipStrategy,
  newStrategyStats,
  noEffects,
  type StrategyEffects,
  type StrategyStats,
} from "./strategy.ts";
export { FullMesh, type FullMeshConfig } from "./full_mesh.ts";
export { HyParView } from "./hyparview.ts";
export type { HyParViewConfig, HyParViewOptions } from "./hyparview_options.ts";
export {
  DEFAULT_ACK_BYTES_MAX,
  DEFAULT_ACK_TIMEOUT_MS,
  DEFAULT_ACKS_OUTSTANDING_MAX,
  DEFAULT_ACTIVE_RANDOM_WALK_LENGTH,
  DEFAULT_ACTIVE_VIEW_SIZE,
  DEFAULT_CALL_TIMEOUT_MS,
  DEFAULT_CALLS_OUTSTANDING_MAX,
  DEFAULT_CAUSAL_BUFFER_MAX,
  DEFAULT_CAUSAL_CLOCK_ENTRIES_MAX,
  DEFAULT_CAUSAL_LABELS_MAX,
  DEFAULT_CAUSAL_WAIT_MS,
  DEFAULT_CONNECT_TIMEOUT_MS,
  DEFAULT_CONNECTIONS_MAX,
  DEFAULT_CONNECTS_PENDING_MAX,
  DEFAULT_DEAD_MEMBER_REMOVE_MS,
  DEFAULT_DEAD_PROBE_INTERVAL_MS,
  DEFAULT_DEDUP_WINDOW,
  DEFAULT_DIRECT_IDLE_MS,
  DEFAULT_FAILURE_TIMEOUT_MS,
  DEFAULT_GOSSIP_FANOUT,
  DEFAULT_GOSSIP_INTERVAL_MS,
  DEFAULT_HANDSHAKE_TIMEOUT_MS,
  DEFAULT_HANDSHAKES_PENDING_MAX,
  DEFAULT_HANDSHAKES_PENDING_PER_ADDRESS_MAX,
  DEFAULT_HPV_PROBE_INTERVAL_MS,
  DEFAULT_LOST_TTL_MS,
  DEFAULT_PASSIVE_RANDOM_WALK_LENGTH,
  DEFAULT_PASSIVE_VIEW_SIZE,
  DEFAULT_PING_INTERVAL_MS,
  DEFAULT_RECONNECT_BACKOFF_MAX_MS,
  DEFAULT_RECONNECT_BACKOFF_MIN_MS,
  DEFAULT_RETRANSMIT_INTERVAL_MS,
  DEFAULT_SEND_QUEUE_BYTES_MAX,
  DEFAULT_SEND_QUEUE_HIGH_WATER_BYTES,
  DEFAULT_SEND_WAITERS_MAX,
  DEFAULT_SHUFFLE_ACTIVE_COUNT,
  DEFAULT_SHUFFLE_INTERVAL_MS,
  DEFAULT_SHUFFLE_PASSIVE_COUNT,
  DEFAULT_TOMBSTONE_TTL_MS,
  DEFAULT_TRANSITIVE_HOPS_MAX,
  DEFAULT_WRITE_BATCH_BYTES_MAX,
} from "./defaults.ts";
