/**
 * The membership decisions, as a pure state machine: a state-based CRDT of node
 * specs keyed by name. For one name, the higher incarnation wins; at equal
 * incarnation a departure (`left`) wins over presence. A restarted node comes
 * back with a higher incarnation and replaces its stale spec; a node that left
 * stays out until it joins again with a higher incarnation.
 *
 * `step(state, event)` returns the next state, what changed, and whether the
 * view must be gossiped. No I/O, no clock: the {@linkcode Node} does the rest.
 *
 * @module
 */

import { ProtocolError } from "./errors.ts";
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
}

/** One entry of the view. */
export interface MemberEntry {
  /** The newest spec known for the name. */
  readonly spec: NodeSpec;
  /** True once the node left at this incarnation (a tombstone). */
  readonly left: boolean;
}

/** The membership state of one node. */
export interface MembershipState {
  /** This node's name. */
  readonly self: string;
  /** Every known entry, by name. */
  readonly entries: ReadonlyMap<string, MemberEntry>;
}

/** Inputs of {@linkcode step}. */
export type MembershipEvent =
  /** A node made itself known directly (handshake or join). */
  | { type: "seen"; spec: NodeSpec }
  /** A peer's view arrived by gossip. */
  | { type: "gossip"; entries: readonly MemberEntry[] }
  /** This node leaves the cluster. */
  | { type: "leave" }
  /** This node (re)joins with a new spec (a higher incarnation after a leave). */
  | { type: "rejoin"; spec: NodeSpec };

/** What one event changed, for one name. */
export interface MembershipChange {
  /** The node concerned. */
  readonly name: string;
  /** `added`: new member; `replaced`: newer incarnation; `left`: departed. */
  readonly kind: "added" | "replaced" | "left";
  /** The spec now in force. */
  readonly spec: NodeSpec;
  /** The spec it replaced, for `replaced`. */
  readonly previous?: NodeSpec;
}

/** Result of {@linkcode step}. */
export interface StepResult {
  /** The next state (the same object when nothing changed). */
  readonly state: MembershipState;
  /** Changes, in name order. */
  readonly changes: readonly MembershipChange[];
  /** True when the view changed and should be gossiped to every member. */
  readonly gossip: boolean;
  /** Entries ignored because the view is at `membersMax`. */
  readonly rejected: number;
}

/** Largest `parallelism` of a channel. */
export const PARALLELISM_MAX = 64;
/** Largest number of channels of a node. */
export const CHANNELS_MAX = 32;
/** Largest number of listen addresses in a spec. */
export const LISTEN_ADDRS_MAX = 16;
/** Longest node or channel name, in UTF-16 code units. */
export const NAME_LENGTH_MAX = 255;
/** Default bound on the number of entries (members and tombstones) in a view. */
export const DEFAULT_MEMBERS_MAX = 4096;

/**
 * The initial state: only this node.
 *
 * @example
 * ```ts
 * import { initialState, members } from "@murmur/murmur/membership";
 * const s = initialState({ name: "a", listenAddrs: [], incarnation: 1, channels: {} });
 * console.log(members(s)); // [ "a" ]
 * ```
 */
export function initialState(self: NodeSpec): MembershipState {
  return { self: self.name, entries: new Map([[self.name, { spec: self, left: false }]]) };
}

/**
 * Sorted names of the members (entries that have not left), self included
 * unless this node left.
 *
 * @example
 * ```ts
 * import { initialState, members } from "@murmur/murmur/membership";
 * console.log(members(initialState({ name: "a", listenAddrs: [], incarnation: 1, channels: {} })));
 * ```
 */
export function members(state: MembershipState): string[] {
  const out: string[] = [];
  for (const [name, e] of state.entries) if (!e.left) out.push(name);
  return out.sort();
}

/** True when `a` supersedes `b` for the same name. */
function supersedes(a: MemberEntry, b: MemberEntry): boolean {
  if (a.spec.incarnation !== b.spec.incarnation) return a.spec.incarnation > b.spec.incarnation;
  return a.left && !b.left;
}

/**
 * Applies one event. Pure: `state` is not modified.
 *
 * @example A restart replaces the stale spec
 * ```ts
 * import { initialState, step } from "@murmur/murmur/membership";
 * const spec = (name: string, incarnation: number, port: number) =>
 *   ({ name, incarnation, listenAddrs: [{ hostname: "127.0.0.1", port }], channels: {} });
 * let s = initialState(spec("a", 1, 7000));
 * s = step(s, { type: "seen", spec: spec("b", 1, 7001) }).state;
 * const r = step(s, { type: "seen", spec: spec("b", 2, 7005) });
 * console.log(r.changes[0]?.kind, r.gossip); // replaced true
 * ```
 */
export function step(
  state: MembershipState,
  event: MembershipEvent,
  membersMax: number = DEFAULT_MEMBERS_MAX,
): StepResult {
  switch (event.type) {
    case "seen":
      return mergeEntries(state, [{ spec: event.spec, left: false }], membersMax);
    case "gossip":
      return mergeEntries(state, event.entries, membersMax);
    case "leave": {
      const mine = state.entries.get(state.self);
      if (mine === undefined || mine.left) return unchanged(state);
      const entries = new Map(state.entries);
      entries.set(state.self, { spec: mine.spec, left: true });
      return {
        state: { self: state.self, entries },
        changes: [{ name: state.self, kind: "left", spec: mine.spec }],
        gossip: true,
        rejected: 0,
      };
    }
    case "rejoin": {
      if (event.spec.name !== state.self) {
        throw new TypeError(`rejoin spec must be for "${state.self}", got "${event.spec.name}"`);
      }
      const mine = state.entries.get(state.self);
      if (mine !== undefined && event.spec.incarnation <= mine.spec.incarnation) {
        throw new RangeError(
          `rejoin needs an incarnation above ${mine.spec.incarnation}, got ${event.spec.incarnation}`,
        );
      }
      const entries = new Map(state.entries);
      entries.set(state.self, { spec: event.spec, left: false });
      return {
        state: { self: state.self, entries },
        changes: [{ name: state.self, kind: "added", spec: event.spec }],
        gossip: true,
        rejected: 0,
      };
    }
  }
}

function unchanged(state: MembershipState): StepResult {
  return { state, changes: [], gossip: false, rejected: 0 };
}

function mergeEntries(
  state: MembershipState,
  incoming: readonly MemberEntry[],
  membersMax: number,
): StepResult {
  let entries: Map<string, MemberEntry> | undefined;
  const changes: MembershipChange[] = [];
  let rejected = 0;
  for (const e of incoming) {
    const name = e.spec.name;
    const current = (entries ?? state.entries).get(name);
    if (name === state.self) {
      // Nobody but this node speaks for itself; a newer self entry means another
      // process runs under this name, which the node reports but does not adopt.
      continue;
    }
    if (current !== undefined && !supersedes(e, current)) continue;
    if (current === undefined && (entries ?? state.entries).size >= membersMax) {
      rejected++;
      continue;
    }
    entries ??= new Map(state.entries);
    entries.set(name, e);
    if (e.left) {
      if (current !== undefined && !current.left) {
        changes.push({ name, kind: "left", spec: e.spec });
      }
    } else if (current === undefined || current.left) {
      changes.push({ name, kind: "added", spec: e.spec });
    } else {
      changes.push({ name, kind: "replaced", spec: e.spec, previous: current.spec });
    }
  }
  if (entries === undefined) return { ...unchanged(state), rejected };
  changes.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  // A new tombstone for an unknown name changes the view (it must spread) without a change.
  return { state: { self: state.self, entries }, changes, gossip: true, rejected };
}

/**
 * Checks that a value received from the network is a valid {@linkcode NodeSpec}.
 *
 * @example
 * ```ts
 * import { validateSpec } from "@murmur/murmur/membership";
 * const s = validateSpec({ name: "a", listenAddrs: [], incarnation: 1, channels: {} });
 * console.log(s.name); // a
 * ```
 */
export function validateSpec(v: unknown): NodeSpec {
  if (typeof v !== "object" || v === null) throw new ProtocolError("spec is not a map");
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
  return { name: s.name, incarnation: s.incarnation, listenAddrs, channels };
}

/**
 * Checks a gossiped entry list (`[[spec, left], ...]`).
 *
 * @example
 * ```ts
 * import { validateEntries } from "@murmur/murmur/membership";
 * const spec = { name: "a", listenAddrs: [], incarnation: 1, channels: {} };
 * console.log(validateEntries([[spec, false]]).length); // 1
 * ```
 */
export function validateEntries(
  v: unknown[],
  membersMax: number = DEFAULT_MEMBERS_MAX,
): MemberEntry[] {
  if (v.length > membersMax) {
    throw new ProtocolError(`gossip of ${v.length} entries is over membersMax`);
  }
  return v.map((e) => {
    if (!Array.isArray(e) || e.length !== 2 || typeof e[1] !== "boolean") {
      throw new ProtocolError("gossip entry is not [spec, left]");
    }
    return { spec: validateSpec(e[0]), left: e[1] };
  });
}

/**
 * The wire form of a state's entries, as {@linkcode validateEntries} reads it.
 *
 * @example
 * ```ts
 * import { entriesForWire, initialState } from "@murmur/murmur/membership";
 * const s = initialState({ name: "a", listenAddrs: [], incarnation: 1, channels: {} });
 * console.log(entriesForWire(s).length); // 1
 * ```
 */
export function entriesForWire(state: MembershipState): [NodeSpec, boolean][] {
  return [...state.entries.values()].map((e) => [e.spec, e.left]);
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
