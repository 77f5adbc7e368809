/**
 * Node identity: what a node is ({@linkcode NodeSpec}: its name, where it
 * listens, its incarnation and channels), how a spec from the network is
 * checked ({@linkcode validateSpec}), and the bounds of names and addresses.
 *
 * @module
 */

import { ProtocolError } from "../base/errors.ts";
import type { Address } from "./transport.ts";

/** Per-channel settings, part of every node spec. */
export interface ChannelOptions {
  /** Connections per peer for this channel (default 1, at most {@linkcode PARALLELISM_MAX}). */
  parallelism?: number;
  /** Keep only the newest queued message per key while the connection is backed up. */
  monotonic?: boolean;
}

/** How a node can be reached and who it is. */
export interface NodeSpec {
  /** Unique name of the node in its cluster. */
  readonly name: string;
  /** Where it listens. */
  readonly listenAddrs: readonly Address[];
  /** Grows on every restart or rejoin; the larger one wins. */
  readonly incarnation: number;
  /** Its channels (name to settings). */
  readonly channels: Readonly<Record<string, Readonly<ChannelOptions>>>;
  /**
   * Its tags (serf's tags, memberlist's `Meta`): role, zone, version... Set at
   * start, changed with `setTags`; absent when there are none.
   */
  readonly tags?: Readonly<Record<string, string>>;
  /** Grows on every `setTags` within one incarnation: the larger one wins. */
  readonly tagsVersion?: number;
}

/** Node tags: name to value. */
export type Tags = Readonly<Record<string, string>>;

/** Most tags of a node. */
export const TAGS_MAX = 32;
/** Most characters of all tag names and values of a node together (they travel in every spec). */
export const TAGS_LENGTH_MAX = 1024;
/** Longest tag name. */
export const TAG_NAME_LENGTH_MAX = 64;

/** Largest `parallelism` of a channel. */
export const PARALLELISM_MAX = 64;
/** Largest number of channels of a node. */
export const CHANNELS_MAX = 32;
/** Largest number of listen addresses in a spec. */
export const LISTEN_ADDRS_MAX = 16;
/** Longest node or channel name, in UTF-16 code units. */
export const NAME_LENGTH_MAX = 255;
/**
 * Checks that a value received from the network is a valid {@linkcode NodeSpec}.
 *
 * @example
 * ```ts
 * import { validateSpec } from "@murmur/murmur/protocol";
 * const s = validateSpec({ name: "a", listenAddrs: [], incarnation: 1, channels: {} });
 * console.log(s.name); // a
 * ```
 */
export function validateSpec(v: unknown): NodeSpec {
  if (typeof v !== "object" || v === null) throw new ProtocolError("spec is not a map");
  // A spec this function returned (never changed afterwards: specs are replaced, not edited)
  // is valid: the simulator passes the same objects around, and shuffles carry many.
  if (VALIDATED.has(v)) return v as NodeSpec;
  const s = v as Record<string, unknown>;
  if (!isName(s.name)) throw new ProtocolError("spec.name is not a valid name");
  if (
    !(typeof s.incarnation === "number" && Number.isSafeInteger(s.incarnation) &&
      s.incarnation >= 0)
  ) {
    throw new ProtocolError("spec.incarnation is not a non-negative integer");
  }
  if (!Array.isArray(s.listenAddrs) || s.listenAddrs.length > LISTEN_ADDRS_MAX) {
    throw new ProtocolError("spec.listenAddrs is not a short array");
  }
  const listenAddrs: Address[] = [];
  for (const a of s.listenAddrs as unknown[]) {
    const r = a as Record<string, unknown> | null;
    if (
      typeof r !== "object" || r === null || typeof r.hostname !== "string" ||
      r.hostname.length === 0 || r.hostname.length > NAME_LENGTH_MAX ||
      typeof r.port !== "number" || !Number.isInteger(r.port) || r.port < 0 || r.port > 65535
    ) throw new ProtocolError("spec.listenAddrs has an invalid address");
    listenAddrs.push({ hostname: r.hostname, port: r.port });
  }
  if (typeof s.channels !== "object" || s.channels === null || Array.isArray(s.channels)) {
    throw new ProtocolError("spec.channels is not a map");
  }
  const names = Object.keys(s.channels);
  if (names.length > CHANNELS_MAX) throw new ProtocolError("spec.channels has too many channels");
  const channels: Record<string, ChannelOptions> = {};
  for (const n of names) {
    const c = (s.channels as Record<string, unknown>)[n] as Record<string, unknown> | null;
    if (!isName(n) || typeof c !== "object" || c === null) {
      throw new ProtocolError("spec.channels has an invalid channel");
    }
    const p = c.parallelism ?? 1;
    if (typeof p !== "number" || !Number.isInteger(p) || p < 1 || p > PARALLELISM_MAX) {
      throw new ProtocolError("spec.channels has an invalid parallelism");
    }
    channels[n] = { parallelism: p, monotonic: c.monotonic === true };
  }
  const spec: NodeSpec = { name: s.name, incarnation: s.incarnation, listenAddrs, channels };
  if (s.tags === undefined) return validated(spec);
  const why = tagsProblem(s.tags);
  if (why !== undefined) throw new ProtocolError(`spec.tags: ${why}`);
  const tv = s.tagsVersion ?? 0;
  if (typeof tv !== "number" || !Number.isSafeInteger(tv) || tv < 0) {
    throw new ProtocolError("spec.tagsVersion is not a non-negative integer");
  }
  const tags = Object.fromEntries(Object.entries(s.tags as Record<string, string>));
  return validated({ ...spec, tags, tagsVersion: tv });
}

/** Specs `validateSpec` built (a memo with no effect on results: it only skips work). */
const VALIDATED = new WeakSet<object>();

function validated(spec: NodeSpec): NodeSpec {
  VALIDATED.add(spec);
  return spec;
}

/** What is wrong with `tags`, or undefined. */
function tagsProblem(tags: unknown): string | undefined {
  if (typeof tags !== "object" || tags === null || Array.isArray(tags)) {
    return "tags are an object of strings";
  }
  const entries = Object.entries(tags);
  if (entries.length > TAGS_MAX) return `${entries.length} tags (at most ${TAGS_MAX})`;
  let length = 0;
  for (const [k, v] of entries) {
    if (!isName(k) || k.length > TAG_NAME_LENGTH_MAX) {
      return `tag name ${
        JSON.stringify(k.slice(0, 80))
      } is not 1-${TAG_NAME_LENGTH_MAX} characters without control characters`;
    }
    if (typeof v !== "string") return `tag "${k}" is not a string`;
    length += k.length + v.length;
  }
  if (length > TAGS_LENGTH_MAX) {
    return `tags of ${length} characters (at most ${TAGS_LENGTH_MAX}, names and values together)`;
  }
  return undefined;
}

/**
 * Checks tags given by the user; returns a frozen copy.
 *
 * @throws {TypeError} naming what is wrong (a name, a value, the count or the size).
 *
 * @example
 * ```ts
 * import { checkTags } from "@murmur/murmur/membership";
 * console.log(checkTags({ role: "web", zone: "a" })); // { role: "web", zone: "a" }
 * ```
 */
export function checkTags(tags: unknown): Tags {
  const why = tagsProblem(tags);
  if (why !== undefined) throw new TypeError(`invalid tags: ${why}`);
  return Object.freeze(Object.fromEntries(Object.entries(tags as Record<string, string>)));
}

/** True when `tags` has every pair of `want`. */
export function matchesTags(tags: Tags | undefined, want: Tags): boolean {
  for (const k in want) if (tags?.[k] !== want[k]) return false;
  return true;
}

/**
 * True for a valid node or channel name: 1 to 255 characters, no control characters.
 *
 * @example
 * ```ts
 * import { isName } from "@murmur/murmur/membership";
 * console.log(isName("node-1"), isName("")); // true false
 * ```
 */
export function isName(v: unknown): v is string {
  return typeof v === "string" && v.length > 0 && v.length <= NAME_LENGTH_MAX &&
    // deno-lint-ignore no-control-regex
    !/[\x00-\x1f]/.test(v);
}
