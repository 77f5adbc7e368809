/**
 * The types of a {@linkcode PublisherCore}: its options, what it asks of its
 * host, its counters; and the reading of the options' limits.
 *
 * @module
 */

import type { Random } from "../base/clock.ts";
import type { Logger } from "../base/logger.ts";
import type { AntiEntropy, PushId, PushPayload } from "./overlay_wire.ts";
import * as D from "./defaults.ts";
import { numberOption } from "../base/options.ts";

/** Options of a {@linkcode PublisherCore}. */
export interface PublisherCoreOptions {
  /** This node's name. */
  name: string;
  /** This publisher's epoch: greater than any earlier publisher of this scope on this node. */
  epoch: number;
  /** Randomness (the neighbour each anti-entropy round picks). */
  random: Random;
  /**
   * How long a down origin's data stays shown (a refutation within it changes nothing).
   *
   * @default 0
   */
  downGraceMs?: number;
  /** Options passed to `initLocalData` and `initGlobalView`. */
  moduleOptions?: Record<string, unknown>;
  /** Receives log records (module callbacks that threw, malformed messages). */
  logger?: Logger;
  /**
   * The node's frame limit: an update, or local data, that would not fit a
   * message is refused with nothing changed.
   *
   * @default no limit
   */
  frameBytesMax?: number;
  /**
   * How long a removed origin's entry is kept, so that a late copy of its data cannot bring it back.
   *
   * @default 600000
   */
  tombstoneMs?: number;
  /**
   * Origins held per scope; past it a new origin is dropped and counted.
   *
   * @default 100000
   */
  originsMax?: number;
  /**
   * Early updates of one origin kept until those before them arrive.
   *
   * @default 64
   */
  futureMax?: number;
  /**
   * Pushes kept for neighbours that graft.
   *
   * @default 1024
   */
  recentMax?: number;
  /**
   * Buckets compared per anti-entropy message (the rest follow).
   *
   * @default 16
   */
  summaryBucketsMax?: number;
  /**
   * Origins' full data per anti-entropy message.
   *
   * @default 64
   */
  fullBatchMax?: number;
  /**
   * Module versions translated for at once (the least recently seen goes).
   *
   * @default 16
   */
  versionsMax?: number;
  /**
   * Period of the liveness probe of one shown origin that is not a neighbour
   * (round robin): a crash whose every neighbour crashed too is found this way.
   *
   * @default 4000
   */
  probeIntervalMs?: number;
}

/** What the host does after a call: broadcast through the overlay, send to neighbours. */
export interface PublisherEffects {
  /** Pushes to broadcast (Plumtree, the publishers' handler). */
  broadcasts: { id: PushId; payload: PushPayload }[];
  /** Anti-entropy messages, each to one neighbour. */
  sends: { to: string; msg: AntiEntropy }[];
  /**
   * Origins to probe (the host asks the node, over a connection of its own,
   * for its epoch and life in this scope, and tells `probed`).
   */
  probes: { origin: string; epoch: number; life: number }[];
}

/** What a probe found: the origin's epoch and life here, null (it runs no such scope), or no answer. */
export type ProbeAnswer = { epoch: number; life: number } | null | "unreachable" | "unknown";

/** Counters of a {@linkcode PublisherCore}. */
export interface PublisherCoreStats {
  /** Updates of this node. */
  localUpdates: number;
  /** Origins' updates applied here. */
  remoteUpdates: number;
  /** Origins' full data applied here (refutations, anti-entropy). */
  fullSyncs: number;
  /** Messages dropped: malformed, no body for this version, an early update past `futureMax`, no room. */
  dropped: number;
  /** Anti-entropy exchanges that found a difference. */
  exchanges: number;
  /** Deaths learnt (detected, notices, entries). */
  deaths: number;
  /** Death notices about this node refuted. */
  refutations: number;
  /** Origins whose data left the view. */
  removed: number;
}

/** The limits of a core, every one set. */
export type Limits = Required<
  Omit<
    PublisherCoreOptions,
    "name" | "epoch" | "random" | "moduleOptions" | "logger" | "frameBytesMax"
  >
>;

/** The limits in `options`, defaults filled in; a RangeError names a bad one. */
export function readLimits(options: PublisherCoreOptions): Limits {
  const n = (k: keyof Limits, dflt: number, min = 1) => numberOption(k, options[k], dflt, min);
  return {
    downGraceMs: n("downGraceMs", 0, 0),
    tombstoneMs: n("tombstoneMs", D.DEFAULT_TOMBSTONE_MS),
    originsMax: n("originsMax", D.DEFAULT_ORIGINS_MAX),
    futureMax: n("futureMax", D.DEFAULT_FUTURE_MAX),
    recentMax: n("recentMax", D.DEFAULT_RECENT_MAX),
    summaryBucketsMax: n("summaryBucketsMax", D.DEFAULT_SUMMARY_BUCKETS_MAX),
    fullBatchMax: n("fullBatchMax", D.DEFAULT_FULL_BATCH_MAX),
    versionsMax: n("versionsMax", D.DEFAULT_VERSIONS_MAX),
    probeIntervalMs: n("probeIntervalMs", D.DEFAULT_PROBE_INTERVAL_MS),
  };
}

/** Counters at zero. */
export function newStats(): PublisherCoreStats {
  return {
    localUpdates: 0,
    remoteUpdates: 0,
    fullSyncs: 0,
    dropped: 0,
    exchanges: 0,
    deaths: 0,
    refutations: 0,
    removed: 0,
  };
}

/** Nothing for the host to do. */
export function noEffects(): PublisherEffects {
  return { broadcasts: [], sends: [], probes: [] };
}
