/**
 * The settings of the {@linkcode HyParView} strategy (the paper's defaults),
 * its wire message kinds, and the bounds it keeps.
 *
 * @module
 */

import * as D from "./defaults.ts";
import type { Random } from "../base/clock.ts";
import { type NodeSpec, validateSpec } from "./spec.ts";
import { ProtocolError } from "../base/errors.ts";

/** The HyParView settings (the paper's defaults). */
export interface HyParViewOptions {
  /**
   * Neighbours with open connections.
   *
   * @default 5
   */
  activeViewSize?: number;
  /**
   * Addresses kept to replace them.
   *
   * @default 30
   */
  passiveViewSize?: number;
  /**
   * Hops of a FORWARD_JOIN walk, and of a SHUFFLE walk.
   *
   * @default 6
   */
  activeRandomWalkLength?: number;
  /**
   * Hop of a FORWARD_JOIN walk at which the joiner enters the passive view.
   *
   * @default 3
   */
  passiveRandomWalkLength?: number;
  /**
   * Period of SHUFFLE walks.
   *
   * @default 10000
   */
  shuffleIntervalMs?: number;
  /**
   * Period of a high-priority NEIGHBOR to one node lost to a failure (unheard
   * of since), so that the overlay heals after a partition.
   *
   * @default 10000
   */
  probeIntervalMs?: number;
  /**
   * Nodes lost to a failure are probed for this long.
   *
   * @default 600000
   */
  lostTtlMs?: number;
  /**
   * Active-view entries sent in a SHUFFLE.
   *
   * @default 3
   */
  shuffleActiveCount?: number;
  /**
   * Passive-view entries sent in a SHUFFLE.
   *
   * @default 4
   */
  shufflePassiveCount?: number;
}

/** Options of {@linkcode HyParView}. */
export interface HyParViewConfig extends HyParViewOptions {
  /** Randomness for every choice. */
  random: Random;
  /**
   * Specs remembered from handshakes, to answer who a name is.
   *
   * @default 1024
   */
  knownMax?: number;
}

/** Wire kinds of HyParView messages. */
export const HPV = {
  /** `[0]`: the sender joins the cluster through this node. */
  Join: 0,
  /** `[1, spec, ttl]`: a random walk spreading a joiner. */
  ForwardJoin: 1,
  /** `[2, high]`: the sender asks to be a neighbour (1: must accept). */
  Neighbor: 2,
  /** `[3, newcomer?]`: the sender drops this node from its active view (for `newcomer`). */
  Disconnect: 3,
  /** `[4, ttl, specs, path]`: a shuffle walk; `path` are the hops so far, origin first. */
  Shuffle: 4,
  /** `[5, specs, path]`: the answer, going back along `path`. */
  ShuffleReply: 5,
} as const;

export const SHUFFLE_SPECS_MAX = 64;

export function byName(a: NodeSpec, b: NodeSpec): number {
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}
/** First wait after a refused low-priority NEIGHBOR; doubles per refusal up to the shuffle interval. */
export const REPAIR_BACKOFF_MS = 250;
/**
 * A NEIGHBOR request whose connection is up and that has no answer after this
 * long is given up as a refusal (its connection closed, the node back in the
 * passive view, the next request after the backoff): one lost frame or a silent
 * peer would otherwise hold every later request of a node that is short.
 */
export const NEIGHBOR_ANSWER_MS = 10_000;
/**
 * Shuffle intervals of low-priority NEIGHBOR requests refused in a row before a
 * node short of neighbours insists (high priority).
 */
export const INSIST_AFTER_SHUFFLES = 6;
/** Forwarded joiners being dialed at once, in all (each taken only once its connection is up). */
export const CANDIDATES_MAX = 8;
/** Forwarded joiners being dialed at once on behalf of one forwarding neighbour. */
export const CANDIDATES_PER_SOURCE = 2;
/** Forwarded joiners waiting for a dial (past it, more are dropped: a flood). */
export const CANDIDATES_WAITING_MAX = 32;
export const PATH_MAX = 32;
/**
 * A contact takes a joiner at the cost of a neighbour (the paper's JOIN) at
 * most once per this long; a JOIN past it, with the active view full, is shed:
 * its FORWARD_JOIN walks still go out and place it elsewhere, and the contact
 * closes its connection (the joiner joins again after a backoff if no walk
 * placed it). A thousand joins at one contact then cost it a thousand walks,
 * not a thousand evictions.
 */
export const JOIN_EVICT_GAP_MS = 1_000;
/** Joiners whose walks wait for a neighbour of the contact to come up. */
export const JOIN_BACKLOG_MAX = 1_024;
/** Backlogged walks sent when one neighbour comes up. */
export const JOIN_BACKLOG_DRAIN = 16;
/** First wait (jittered) before joining again after a contact shed this node; doubles per shed. */
export const JOIN_RETRY_MS = 500;
/** The longest wait before joining again after a shed. */
export const JOIN_RETRY_MAX_MS = 8_000;
/**
 * A node alone (no neighbour, no passive member) joins again through a node it
 * heard of; when that one cannot be reached it tries the next at once, up to
 * this many in a row, then waits (after 90% of a cluster crashed, most
 * addresses a survivor knows are dead).
 */
export const REJOIN_TRIES_MAX = 64;

export function resolved(o: HyParViewOptions): Required<HyParViewOptions> {
  const r: Required<HyParViewOptions> = {
    activeViewSize: o.activeViewSize ?? D.DEFAULT_ACTIVE_VIEW_SIZE,
    passiveViewSize: o.passiveViewSize ?? D.DEFAULT_PASSIVE_VIEW_SIZE,
    activeRandomWalkLength: o.activeRandomWalkLength ?? D.DEFAULT_ACTIVE_RANDOM_WALK_LENGTH,
    passiveRandomWalkLength: o.passiveRandomWalkLength ?? D.DEFAULT_PASSIVE_RANDOM_WALK_LENGTH,
    shuffleIntervalMs: o.shuffleIntervalMs ?? D.DEFAULT_SHUFFLE_INTERVAL_MS,
    probeIntervalMs: o.probeIntervalMs ?? D.DEFAULT_HPV_PROBE_INTERVAL_MS,
    lostTtlMs: o.lostTtlMs ?? D.DEFAULT_LOST_TTL_MS,
    shuffleActiveCount: o.shuffleActiveCount ?? D.DEFAULT_SHUFFLE_ACTIVE_COUNT,
    shufflePassiveCount: o.shufflePassiveCount ?? D.DEFAULT_SHUFFLE_PASSIVE_COUNT,
  };
  const ints: [keyof HyParViewOptions, number][] = [
    ["activeViewSize", 1],
    ["passiveViewSize", 0],
    ["activeRandomWalkLength", 0],
    ["passiveRandomWalkLength", 0],
    ["shuffleActiveCount", 0],
    ["shufflePassiveCount", 0],
  ];
  for (const [k, min] of ints) {
    const v = r[k];
    if (!Number.isInteger(v) || v < min || v > 1000) {
      throw new RangeError(`${k} must be an integer in [${min}, 1000], got ${v}`);
    }
  }
  for (const k of ["shuffleIntervalMs", "probeIntervalMs", "lostTtlMs"] as const) {
    if (!(r[k] > 0)) throw new RangeError(`${k} must be positive, got ${r[k]}`);
  }
  if (r.passiveRandomWalkLength > r.activeRandomWalkLength) {
    throw new RangeError("passiveRandomWalkLength cannot exceed activeRandomWalkLength");
  }
  return r;
}

/** The specs of a SHUFFLE from the wire (invalid entries are skipped and counted by `invalid`). */
export function shuffleSpecs(v: unknown, invalid: () => void): NodeSpec[] {
  if (!Array.isArray(v) || v.length > SHUFFLE_SPECS_MAX) {
    throw new ProtocolError("shuffle specs are not a short array");
  }
  const out: NodeSpec[] = [];
  for (const s of v) {
    try {
      out.push(validateSpec(s));
    } catch {
      invalid();
    }
  }
  return out;
}

/** The path of a SHUFFLE walk from the wire. */
export function shufflePath(v: unknown): string[] {
  if (
    !Array.isArray(v) || v.length > PATH_MAX ||
    !v.every((n) => typeof n === "string" && n.length > 0 && n.length <= 255)
  ) throw new ProtocolError("shuffle path is not a short list of names");
  return v as string[];
}
