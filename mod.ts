/**
 * murmur: clusters of Deno processes. Gossip membership over TCP, Plumtree
 * broadcast, replicated data publishers and durable servers.
 *
 * This entry is the user's API. Each module has its own entry with its
 * extension points (`@murmur/murmur/membership`: transports and strategies;
 * `@murmur/murmur/durable`: storage helpers for backend authors), and there are
 * `@murmur/murmur/protocol` (the wire, the pure cores, the simulator) and
 * `@murmur/murmur/testing` (the conformance suites, `MemoryNetwork`,
 * `SimulatedClock`).
 *
 * @example
 * ```ts
 * import { Node } from "@murmur/murmur";
 * await using a = await Node.start({ name: "a", cookie: "secret" });
 * await using b = await Node.start({ name: "b", cookie: "secret" });
 * a.register("echo", (msg) => msg);
 * await b.join(a.spec);
 * console.log(await b.call("a", "echo", "hi")); // hi
 * ```
 *
 * @module
 */

// Nodes: membership, messaging, calls.
export {
  AckTimeoutError,
  type Address,
  type CallObservation,
  type CallObserver,
  type CallOptions,
  CallTimeoutError,
  type ChannelOptions,
  checkSendable,
  ClosedError,
  type DiscoveryOptions,
  type DnsDiscoveryOptions,
  type Endpoint,
  endpoint,
  type FullMeshOptions,
  type Handler,
  HandshakeError,
  type HyParViewMembershipOptions,
  type JoinResult,
  type LeaveOnSignalsOptions,
  type MemberInfo,
  type MembershipChange,
  type MembershipOptions,
  type MemberState,
  type MessageContext,
  MurmurError,
  NameConflictError,
  Node,
  NodeDownError,
  type NodeOptions,
  type NodeSpec,
  type NodeStats,
  type PartitionInfo,
  ProtocolError,
  QueueFullError,
  type RegisterOptions,
  RemoteHandlerError,
  type Schema,
  type SendOptions,
  type Tags,
  type TlsOptions,
  type TypedHandler,
  UnknownEndpointError,
  UnknownNodeError,
  type UpdateMembersResult,
  type UpDownCallback,
  type UpDownOptions,
  ValidationError,
  type ValidationIssue,
} from "./membership/mod.ts";
// Time, randomness and logs.
export {
  type Clock,
  consoleLogger,
  createConsoleLogger,
  type Logger,
  type LogLevel,
  type LogRecord,
  quietLogger,
  type Random,
  seededRandom,
  systemClock,
} from "./membership/mod.ts";
// Broadcast.
export {
  type BroadcastHandler,
  type BroadcastServer,
  type GraftResult,
  type Heartbeat,
  HeartbeatHandler,
  type HeartbeatOptions,
  KvHandler,
  type KvHandlerOptions,
  Plumtree,
  type PlumtreeOptions,
  type PlumtreeServerStats,
} from "./broadcast/mod.ts";
// Data publishers, process groups, presence.
export {
  DataPublisher,
  type DataPublisherOptions,
  type Listener,
  type Member,
  type PgEvent,
  type PlainMessages,
  Presence,
  type PresenceDiff,
  type PresenceMeta,
  ProcessGroups,
  type PublisherModule,
  type PublisherStats,
  Subscriptions,
  type TranslatedMessage,
  type Version,
} from "./publisher/mod.ts";
// Topic pub/sub.
export {
  type PublishOptions,
  type PublishResult,
  PubSub,
  type PubSubContext,
  type PubSubOptions,
  type Topic,
  topic,
} from "./pubsub/mod.ts";
// Durable servers and their storage.
export {
  type Action,
  atomic,
  CallbackTimeoutError,
  type CallResult,
  type DeadLetter,
  DeadLetterError,
  DenoKvStorage,
  type DenoKvStorageOptions,
  type DurableBehaviour,
  DurableKilledError,
  DurableServer,
  type DurableServerOptions,
  type DurableServerStats,
  type DurableServerStatus,
  DurableStoppedError,
  DurableTimeoutError,
  type Entry,
  type From,
  type Key,
  type KeyPart,
  type LockedEvent,
  MemoryStorage,
  type NoReplyResult,
  StateTooLargeError,
  type Storage,
  StorageError,
  StorageLimitError,
  type Value,
} from "./durable/mod.ts";
