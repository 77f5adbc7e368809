// Resolved node options: defaults applied and every value checked, with an
// error that names the option. Module-private.

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
const SEND_QUEUE_HIGH_WATER_DEFAULT = 256 * 1024;

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
  const failureTimeoutMs = timeoutOption("failureTimeoutMs", o.failureTimeoutMs, 5000);
  const deadMemberRemoveMs = timeoutOption("deadMemberRemoveMs", o.deadMemberRemoveMs, 60_000);
  const tombstoneTtlMs = timeoutOption("tombstoneTtlMs", o.tombstoneTtlMs, 600_000);
  if (tombstoneTtlMs < deadMemberRemoveMs) {
    throw new RangeError(
      `tombstoneTtlMs (${tombstoneTtlMs}) must be at least deadMemberRemoveMs (${deadMemberRemoveMs}), ` +
        "or removed members could come back through stale gossip",
    );
  }
  const backoffMinMs = n("reconnectBackoffMinMs", o.reconnectBackoffMinMs, 100);
  const backoffMaxMs = n("reconnectBackoffMaxMs", o.reconnectBackoffMaxMs, 5000);
  if (backoffMaxMs < backoffMinMs) {
    throw new RangeError("reconnectBackoffMaxMs must be at least reconnectBackoffMinMs");
  }
  const queueMax = n("sendQueueBytesMax", o.sendQueueBytesMax, 4 * 1024 * 1024);
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
    gossipIntervalMs: n("gossipIntervalMs", o.gossipIntervalMs, 1000),
    gossipFanout: n("gossipFanout", o.gossipFanout, 4),
    pingIntervalMs: n("pingIntervalMs", o.pingIntervalMs, 1000),
    failureTimeoutMs,
    deadMemberRemoveMs,
    tombstoneTtlMs,
    deadProbeIntervalMs: n("deadProbeIntervalMs", o.deadProbeIntervalMs, 10_000),
    connectTimeoutMs: n("connectTimeoutMs", o.connectTimeoutMs, 5000),
    handshakeTimeoutMs: n("handshakeTimeoutMs", o.handshakeTimeoutMs, 3000),
    backoffMinMs,
    backoffMaxMs,
    retransmitIntervalMs: n("retransmitIntervalMs", o.retransmitIntervalMs, 1000),
    callTimeoutMs: timeoutOption("callTimeoutMs", o.callTimeoutMs, 5000),
    ackTimeoutMs: timeoutOption("ackTimeoutMs", o.ackTimeoutMs, 30_000),
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
      sendWaitersMax: n("sendWaitersMax", o.sendWaitersMax, 1024, 0),
      writeBatchBytesMax: n("writeBatchBytesMax", o.writeBatchBytesMax, 256 * 1024),
    },
    callsOutstandingMax: n("callsOutstandingMax", o.callsOutstandingMax, 65536),
    acksOutstandingMax: n("acksOutstandingMax", o.acksOutstandingMax, 65536),
    ackBytesMax: n("ackBytesMax", o.ackBytesMax, 16 * 1024 * 1024, 1024),
    dedupWindow: n("dedupWindow", o.dedupWindow, 65536),
    membersMax: n("membersMax", o.membersMax, DEFAULT_MEMBERS_MAX, 2),
    tombstonesMax: n("tombstonesMax", o.tombstonesMax, DEFAULT_TOMBSTONES_MAX, 1),
    connectionsMax: n("connectionsMax", o.connectionsMax, 4096),
    handshakesPendingMax: n("handshakesPendingMax", o.handshakesPendingMax, 256),
    handshakesPendingPerAddressMax: n(
      "handshakesPendingPerAddressMax",
      o.handshakesPendingPerAddressMax,
      32,
    ),
    connectsPendingMax: n("connectsPendingMax", o.connectsPendingMax, 64),
    causal: {
      causalBufferMax: n("causalBufferMax", o.causalBufferMax, 1000),
      causalWaitMs: timeoutOption("causalWaitMs", o.causalWaitMs, 30_000),
      causalLabelsMax: n("causalLabelsMax", o.causalLabelsMax, 1024),
      causalClockEntriesMax: n("causalClockEntriesMax", o.causalClockEntriesMax, 1024, 2),
    },
    routing: {
      transitiveHopsMax: n("transitiveHopsMax", o.transitiveHopsMax, 10),
      routesMax: 4096,
      routedIdsMax: 8192,
    },
  };
}
