// Resolved node options: defaults applied and every value checked, with an
// error that names the option. Module-private.

import * as D from "./defaults.ts";
import { type Clock, mathRandom, type Random, systemClock } from "../base/clock.ts";
import { numberOption, timeoutOption } from "../base/options.ts";
import { DEFAULT_HANDSHAKE_FRAME_BYTES_MAX } from "./handshake.ts";
import type { LinkLimits } from "./_link.ts";
import type { CausalLimits } from "./_causal.ts";
import type { RoutingLimits } from "./_routing.ts";
import { consoleLogger, type Logger, type LogLevel } from "../base/logger.ts";
import {
  type ChannelOptions,
  CHANNELS_MAX,
  isName,
  LISTEN_ADDRS_MAX,
  NAME_LENGTH_MAX,
  PARALLELISM_MAX,
} from "./spec.ts";
import { DEFAULT_MEMBERS_MAX, DEFAULT_TOMBSTONES_MAX } from "./membership_state.ts";
import type { NodeOptions } from "./options.ts";
import { type Address, DEFAULT_FRAME_BYTES_MAX } from "./transport.ts";

/** The channel every node has; membership and liveness traffic use it. */
export const DEFAULT_CHANNEL = "default";

/** Settings of one channel after defaults. */
export interface ChannelConfig {
  name: string;
  parallelism: number;
  monotonic: boolean;
}

export interface NodeConfig {
  name: string;
  cookie: string;
  cluster: string;
  clock: Clock;
  random: Random;
  log: Logger;
  channels: Map<string, ChannelConfig>;
  gossipIntervalMs: number;
  gossipFanout: number;
  pingIntervalMs: number;
  failureTimeoutMs: number;
  deadMemberRemoveMs: number;
  tombstoneTtlMs: number;
  deadProbeIntervalMs: number;
  connectTimeoutMs: number;
  handshakeTimeoutMs: number;
  backoffMinMs: number;
  backoffMaxMs: number;
  retransmitIntervalMs: number;
  callTimeoutMs: number;
  ackTimeoutMs: number;
  frameBytesMax: number;
  handshakeFrameBytesMax: number;
  link: LinkLimits;
  callsOutstandingMax: number;
  acksOutstandingMax: number;
  ackBytesMax: number;
  dedupWindow: number;
  membersMax: number;
  tombstonesMax: number;
  connectionsMax: number;
  handshakesPendingMax: number;
  handshakesPendingPerAddressMax: number;
  connectsPendingMax: number;
  causal: CausalLimits;
  routing: RoutingLimits;
}

/** Default of `NodeOptions.sendQueueHighWaterBytes`. */
const SEND_QUEUE_HIGH_WATER_DEFAULT = D.DEFAULT_SEND_QUEUE_HIGH_WATER_BYTES;

/** Logs one line as this node (`peer` and `error` only when given). */
export function logAs(
  cfg: NodeConfig,
  level: LogLevel,
  msg: string,
  peer?: string,
  error?: unknown,
): void {
  cfg.log({
    level,
    node: cfg.name,
    msg,
    ...(peer === undefined ? {} : { peer }),
    ...(error === undefined ? {} : { error }),
  });
}

/** Checks an address given by the user. */
export function checkAddress(a: unknown, what: string): Address {
  const r = a as Address | null;
  if (
    typeof r !== "object" || r === null || typeof r.hostname !== "string" ||
    r.hostname.length === 0 || r.hostname.length > NAME_LENGTH_MAX ||
    !Number.isInteger(r.port) || r.port < 0 || r.port > 65535
  ) {
    throw new TypeError(`${what} must be { hostname, port } with a port in [0, 65535]`);
  }
  return { hostname: r.hostname, port: r.port };
}

/** True for a wildcard listen address that peers cannot dial. */
export function isWildcard(hostname: string): boolean {
  return hostname === "0.0.0.0" || hostname === "::" || hostname === "[::]" ||
    hostname === "0:0:0:0:0:0:0:0";
}

export function resolveConfig(options: NodeOptions): NodeConfig {
  const o = options;
  const n = numberOption;
  const channels = new Map<string, ChannelConfig>();
  const chans: Record<string, ChannelOptions> = { [DEFAULT_CHANNEL]: {}, ...o.channels };
  if (Object.keys(chans).length > CHANNELS_MAX) {
    throw new RangeError(`at most ${CHANNELS_MAX} channels, got ${Object.keys(chans).length}`);
  }
  for (const [name, c] of Object.entries(chans)) {
    if (!isName(name)) throw new TypeError(`invalid channel name ${JSON.stringify(name)}`);
    const parallelism = c?.parallelism ?? 1;
    if (!Number.isInteger(parallelism) || parallelism < 1 || parallelism > PARALLELISM_MAX) {
      throw new RangeError(
        `channel "${name}": parallelism must be an integer in [1, ${PARALLELISM_MAX}], got ${parallelism}`,
      );
    }
    channels.set(name, { name, parallelism, monotonic: c?.monotonic === true });
  }
  if (o.advertise !== undefined) {
    if (!Array.isArray(o.advertise) || o.advertise.length === 0) {
      throw new TypeError("advertise must be a non-empty array of { hostname, port }");
    }
    if (o.advertise.length > LISTEN_ADDRS_MAX) {
      throw new RangeError(`advertise takes at most ${LISTEN_ADDRS_MAX} addresses`);
    }
    o.advertise.forEach((a, i) => checkAddress(a, `advertise[${i}]`));
  }
  const failureTimeoutMs = timeoutOption(
    "failureTimeoutMs",
    o.failureTimeoutMs,
    D.DEFAULT_FAILURE_TIMEOUT_MS,
  );
  const deadMemberRemoveMs = timeoutOption(
    "deadMemberRemoveMs",
    o.deadMemberRemoveMs,
    D.DEFAULT_DEAD_MEMBER_REMOVE_MS,
  );
  const tombstoneTtlMs = timeoutOption(
    "tombstoneTtlMs",
    o.tombstoneTtlMs,
    D.DEFAULT_TOMBSTONE_TTL_MS,
  );
  if (tombstoneTtlMs < deadMemberRemoveMs) {
    throw new RangeError(
      `tombstoneTtlMs (${tombstoneTtlMs}) must be at least deadMemberRemoveMs (${deadMemberRemoveMs}), ` +
        "or removed members could come back through stale gossip",
    );
  }
  const backoffMinMs = n(
    "reconnectBackoffMinMs",
    o.reconnectBackoffMinMs,
    D.DEFAULT_RECONNECT_BACKOFF_MIN_MS,
  );
  const backoffMaxMs = n(
    "reconnectBackoffMaxMs",
    o.reconnectBackoffMaxMs,
    D.DEFAULT_RECONNECT_BACKOFF_MAX_MS,
  );
  if (backoffMaxMs < backoffMinMs) {
    throw new RangeError("reconnectBackoffMaxMs must be at least reconnectBackoffMinMs");
  }
  const queueMax = n("sendQueueBytesMax", o.sendQueueBytesMax, D.DEFAULT_SEND_QUEUE_BYTES_MAX);
  const highWater = o.sendQueueHighWaterBytes === undefined
    ? Math.min(SEND_QUEUE_HIGH_WATER_DEFAULT, queueMax)
    : n("sendQueueHighWaterBytes", o.sendQueueHighWaterBytes, 0, 0);
  if (highWater > queueMax) {
    throw new RangeError(
      `sendQueueHighWaterBytes (${highWater}) must be at most sendQueueBytesMax (${queueMax})`,
    );
  }
  return {
    name: o.name,
    cookie: o.cookie,
    cluster: o.cluster ?? "murmur",
    clock: o.clock ?? systemClock,
    random: o.random ?? mathRandom,
    log: o.logger ?? consoleLogger,
    channels,
    gossipIntervalMs: n("gossipIntervalMs", o.gossipIntervalMs, D.DEFAULT_GOSSIP_INTERVAL_MS),
    gossipFanout: n("gossipFanout", o.gossipFanout, D.DEFAULT_GOSSIP_FANOUT),
    pingIntervalMs: n("pingIntervalMs", o.pingIntervalMs, D.DEFAULT_PING_INTERVAL_MS),
    failureTimeoutMs,
    deadMemberRemoveMs,
    tombstoneTtlMs,
    deadProbeIntervalMs: n(
      "deadProbeIntervalMs",
      o.deadProbeIntervalMs,
      D.DEFAULT_DEAD_PROBE_INTERVAL_MS,
    ),
    connectTimeoutMs: n("connectTimeoutMs", o.connectTimeoutMs, D.DEFAULT_CONNECT_TIMEOUT_MS),
    handshakeTimeoutMs: n(
      "handshakeTimeoutMs",
      o.handshakeTimeoutMs,
      D.DEFAULT_HANDSHAKE_TIMEOUT_MS,
    ),
    backoffMinMs,
    backoffMaxMs,
    retransmitIntervalMs: n(
      "retransmitIntervalMs",
      o.retransmitIntervalMs,
      D.DEFAULT_RETRANSMIT_INTERVAL_MS,
    ),
    callTimeoutMs: timeoutOption("callTimeoutMs", o.callTimeoutMs, D.DEFAULT_CALL_TIMEOUT_MS),
    ackTimeoutMs: timeoutOption("ackTimeoutMs", o.ackTimeoutMs, D.DEFAULT_ACK_TIMEOUT_MS),
    frameBytesMax: n("frameBytesMax", o.frameBytesMax, DEFAULT_FRAME_BYTES_MAX, 1024),
    handshakeFrameBytesMax: n(
      "handshakeFrameBytesMax",
      o.handshakeFrameBytesMax,
      DEFAULT_HANDSHAKE_FRAME_BYTES_MAX,
      1024,
    ),
    link: {
      sendQueueBytesMax: queueMax,
      sendQueueHighWaterBytes: highWater,
      sendWaitersMax: n("sendWaitersMax", o.sendWaitersMax, D.DEFAULT_SEND_WAITERS_MAX, 0),
      writeBatchBytesMax: n(
        "writeBatchBytesMax",
        o.writeBatchBytesMax,
        D.DEFAULT_WRITE_BATCH_BYTES_MAX,
      ),
    },
    callsOutstandingMax: n(
      "callsOutstandingMax",
      o.callsOutstandingMax,
      D.DEFAULT_CALLS_OUTSTANDING_MAX,
    ),
    acksOutstandingMax: n(
      "acksOutstandingMax",
      o.acksOutstandingMax,
      D.DEFAULT_ACKS_OUTSTANDING_MAX,
    ),
    ackBytesMax: n("ackBytesMax", o.ackBytesMax, D.DEFAULT_ACK_BYTES_MAX, 1024),
    dedupWindow: n("dedupWindow", o.dedupWindow, D.DEFAULT_DEDUP_WINDOW),
    membersMax: n("membersMax", o.membersMax, DEFAULT_MEMBERS_MAX, 2),
    tombstonesMax: n("tombstonesMax", o.tombstonesMax, DEFAULT_TOMBSTONES_MAX, 1),
    connectionsMax: n("connectionsMax", o.connectionsMax, D.DEFAULT_CONNECTIONS_MAX),
    handshakesPendingMax: n(
      "handshakesPendingMax",
      o.handshakesPendingMax,
      D.DEFAULT_HANDSHAKES_PENDING_MAX,
    ),
    // At least what one peer with this node's channels opens at once (every channel's
    // connections, twice: a restart's new set beside the old).
    handshakesPendingPerAddressMax: Math.max(
      n(
        "handshakesPendingPerAddressMax",
        o.handshakesPendingPerAddressMax,
        D.DEFAULT_HANDSHAKES_PENDING_PER_ADDRESS_MAX,
      ),
      2 * [...channels.values()].reduce((a, c) => a + c.parallelism, 0),
    ),
    connectsPendingMax: n(
      "connectsPendingMax",
      o.connectsPendingMax,
      D.DEFAULT_CONNECTS_PENDING_MAX,
    ),
    causal: {
      causalBufferMax: n("causalBufferMax", o.causalBufferMax, D.DEFAULT_CAUSAL_BUFFER_MAX),
      causalWaitMs: timeoutOption("causalWaitMs", o.causalWaitMs, D.DEFAULT_CAUSAL_WAIT_MS),
      causalLabelsMax: n("causalLabelsMax", o.causalLabelsMax, D.DEFAULT_CAUSAL_LABELS_MAX),
      causalClockEntriesMax: n(
        "causalClockEntriesMax",
        o.causalClockEntriesMax,
        D.DEFAULT_CAUSAL_CLOCK_ENTRIES_MAX,
        2,
      ),
    },
    routing: {
      transitiveHopsMax: n("transitiveHopsMax", o.transitiveHopsMax, D.DEFAULT_TRANSITIVE_HOPS_MAX),
      routesMax: 4096,
      routedIdsMax: 8192,
    },
  };
}
