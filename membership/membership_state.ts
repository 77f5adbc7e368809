/**
 * The membership decisions, as a pure state machine: a state-based CRDT of node
 * specs keyed by name. For one name, the higher incarnation wins; at equal
 * incarnation a tombstone wins over presence (a departure, `left`, over a
 * removal, `removed`), and two different live specs are ordered by their
 * addresses, so every merge order converges. A restarted node comes back with
 * a higher incarnation and replaces its stale spec; a node that left, or that
 * was removed after being down for too long, stays out until it comes back
 * with a higher incarnation.
 *
 * Tombstones carry the local time they were set or learned (`tombstonedAt`,
 * this node's monotonic clock) and expire by {@linkcode step}'s `expire`
 * event; live members and tombstones each have their own bound
 * (`membersMax`, `tombstonesMax`), so gossip can never push a view into a
 * state it cannot leave.
 *
 * `step(state, event, options)` returns the next state, what changed, and
 * whether the view must be gossiped. No I/O and no clock of its own: time
 * comes in as `options.now`, and the {@linkcode Node} does the rest.
 *
 * @module
 */

import { ProtocolError } from "../base/errors.ts";
import { type NodeSpec, validateSpec } from "./spec.ts";

/**
 * The status of a view entry: `alive` (a member), `left` (it left at this
 * incarnation) or `removed` (it was down for `deadMemberRemoveMs`, or removed
 * by hand with `leave(name)`). The last two are tombstones.
 */
export type MemberStatus = "alive" | "left" | "removed";

/** One entry of the view. */
export interface MemberEntry {
  /** The newest spec known for the name. */
  readonly spec: NodeSpec;
  /** Member or tombstone. */
  readonly status: MemberStatus;
}

/** The membership state of one node. */
export interface MembershipState {
  /** This node's name. */
  readonly self: string;
  /** Every known entry, by name. */
  readonly entries: ReadonlyMap<string, MemberEntry>;
  /** For each tombstone, when (this node's monotonic clock) it was set or learned; oldest first. */
  readonly tombstonedAt: ReadonlyMap<string, number>;
  /** Number of `alive` entries. */
  readonly alive: number;
}

/** Inputs of {@linkcode step}. */
export type MembershipEvent =
  /** A node made itself known directly (handshake or join). */
  | { type: "seen"; spec: NodeSpec }
  /** A peer's view arrived by gossip. */
  | { type: "gossip"; entries: readonly MemberEntry[] }
  /** This node leaves the cluster. */
  | { type: "leave" }
  /** This node takes a new spec (a higher incarnation: a rejoin after a leave, or a refutation). */
  | { type: "rejoin"; spec: NodeSpec }
  /** This node's tags changed: the same incarnation, a higher `tagsVersion`. */
  | { type: "retag"; spec: NodeSpec }
  /** These members are removed (tombstoned at their current incarnation). */
  | { type: "remove"; names: readonly string[] }
  /** Tombstones set or learned before `before` are forgotten. */
  | { type: "expire"; before: number };

/** What one event changed, for one name. */
export interface MembershipChange {
  /** The node concerned. */
  readonly name: string;
  /**
   * `added`: new member; `replaced`: newer incarnation (or address);
   * `updated`: new tags (same incarnation: connections stay); `left`:
   * departed; `removed`: tombstoned after being down, or by hand.
   */
  readonly kind: "added" | "replaced" | "updated" | "left" | "removed";
  /** The spec now in force. */
  readonly spec: NodeSpec;
  /** The spec it replaced, for `replaced` (the stale spec, pruned) and `updated`. */
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
  /** Live entries ignored because the view is at `membersMax`. */
  readonly rejected: number;
  /**
   * An entry about this node itself that supersedes its own (a tombstone from a
   * peer that thought it dead, or a live spec of another process under its
   * name). Not applied: nobody but this node speaks for itself; the node decides.
   */
  readonly self?: MemberEntry;
}

/** Options of {@linkcode step}. */
export interface StepOptions {
  /** Bound on live entries (default {@linkcode DEFAULT_MEMBERS_MAX}). */
  membersMax?: number;
  /** Bound on tombstones; the oldest go first (default {@linkcode DEFAULT_TOMBSTONES_MAX}). */
  tombstonesMax?: number;
  /**
   * This node's monotonic time, stamped on new tombstones.
   *
   * @default 0
   */
  now?: number;
}

/** Default bound on the number of live members in a view. */
export const DEFAULT_MEMBERS_MAX = 4096;
/** Default bound on the number of tombstones in a view. */
export const DEFAULT_TOMBSTONES_MAX = 4096;

/**
 * The initial state: only this node.
 *
 * @example
 * ```ts
 * import { initialState, members } from "@murmur/murmur/protocol";
 * const s = initialState({ name: "a", listenAddrs: [], incarnation: 1, channels: {} });
 * console.log(members(s)); // [ "a" ]
 * ```
 */
export function initialState(self: NodeSpec): MembershipState {
  return {
    self: self.name,
    entries: new Map([[self.name, { spec: self, status: "alive" }]]),
    tombstonedAt: new Map(),
    alive: 1,
  };
}

/**
 * Sorted names of the members (live entries), self included unless this node left.
 *
 * @example
 * ```ts
 * import { initialState, members } from "@murmur/murmur/protocol";
 * console.log(members(initialState({ name: "a", listenAddrs: [], incarnation: 1, channels: {} })));
 * ```
 */
export function members(state: MembershipState): string[] {
  const out: string[] = [];
  for (const [name, e] of state.entries) if (e.status === "alive") out.push(name);
  return out.sort();
}

const RANK: Record<MemberStatus, number> = { alive: 0, removed: 1, left: 2 };

/** Equal channel settings (specs are built canonically: only these two fields). */
function sameChannels(a: NodeSpec["channels"], b: NodeSpec["channels"]): boolean {
  const ka = Object.keys(a);
  if (ka.length !== Object.keys(b).length) return false;
  for (const k of ka) {
    const x = a[k]!, y = b[k];
    if (
      y === undefined || (x.parallelism ?? 1) !== (y.parallelism ?? 1) ||
      (x.monotonic === true) !== (y.monotonic === true)
    ) return false;
  }
  return true;
}

/** Orders two specs of one name and incarnation by content (addresses, then channels). */
function compareContent(a: NodeSpec, b: NodeSpec): number {
  const n = Math.min(a.listenAddrs.length, b.listenAddrs.length);
  for (let i = 0; i < n; i++) {
    const x = a.listenAddrs[i]!, y = b.listenAddrs[i]!;
    if (x.hostname !== y.hostname) return x.hostname < y.hostname ? -1 : 1;
    if (x.port !== y.port) return x.port - y.port;
  }
  if (a.listenAddrs.length !== b.listenAddrs.length) {
    return a.listenAddrs.length - b.listenAddrs.length;
  }
  if (sameChannels(a.channels, b.channels)) return 0; // the common case, without serializing
  const ca = JSON.stringify(Object.entries(a.channels).sort());
  const cb = JSON.stringify(Object.entries(b.channels).sort());
  return ca < cb ? -1 : ca > cb ? 1 : 0;
}

/**
 * True when `a` supersedes `b` for the same name: a higher incarnation; at
 * equal incarnation a tombstone over presence (`left` over `removed`), and
 * between two different specs of the same status, the greater address key.
 *
 * @example
 * ```ts
 * import { supersedes } from "@murmur/murmur/protocol";
 * const spec = { name: "b", incarnation: 2, listenAddrs: [], channels: {} };
 * console.log(supersedes({ spec, status: "removed" }, { spec, status: "alive" })); // true
 * ```
 */
export function supersedes(a: MemberEntry, b: MemberEntry): boolean {
  if (a.spec.incarnation !== b.spec.incarnation) return a.spec.incarnation > b.spec.incarnation;
  if (a.status !== b.status) return RANK[a.status] > RANK[b.status];
  if (a.spec === b.spec) return false;
  const c = compareContent(a.spec, b.spec);
  if (c !== 0) return c > 0;
  return (a.spec.tagsVersion ?? 0) > (b.spec.tagsVersion ?? 0);
}

function normalize(options: number | StepOptions | undefined): Required<StepOptions> {
  const o = typeof options === "number" ? { membersMax: options } : options ?? {};
  return {
    membersMax: o.membersMax ?? DEFAULT_MEMBERS_MAX,
    tombstonesMax: o.tombstonesMax ?? DEFAULT_TOMBSTONES_MAX,
    now: o.now ?? 0,
  };
}

/** A state under construction: copies the maps on the first write. */
class Draft {
  readonly base: MembershipState;
  entries: Map<string, MemberEntry> | undefined;
  stamps: Map<string, number> | undefined;
  alive: number;
  constructor(base: MembershipState) {
    this.base = base;
    this.alive = base.alive;
  }
  get(name: string): MemberEntry | undefined {
    return (this.entries ?? this.base.entries).get(name);
  }
  get size(): number {
    return (this.entries ?? this.base.entries).size;
  }
  set(name: string, e: MemberEntry, now: number, tombstonesMax: number): void {
    this.entries ??= new Map(this.base.entries);
    this.stamps ??= new Map(this.base.tombstonedAt);
    const old = this.entries.get(name);
    if (old?.status === "alive") this.alive--;
    if (e.status === "alive") this.alive++;
    this.entries.set(name, e);
    this.stamps.delete(name);
    if (e.status !== "alive") {
      this.stamps.set(name, now); // the newest at the end
      while (this.stamps.size > tombstonesMax) this.#dropOldestTombstone();
    }
  }
  delete(name: string): void {
    this.entries ??= new Map(this.base.entries);
    this.stamps ??= new Map(this.base.tombstonedAt);
    if (this.entries.get(name)?.status === "alive") this.alive--;
    this.entries.delete(name);
    this.stamps.delete(name);
  }
  #dropOldestTombstone(): void {
    const oldest = this.stamps!.keys().next().value!;
    this.stamps!.delete(oldest);
    this.entries!.delete(oldest);
  }
  done(): MembershipState {
    if (this.entries === undefined) return this.base;
    return {
      self: this.base.self,
      entries: this.entries,
      tombstonedAt: this.stamps!,
      alive: this.alive,
    };
  }
}

/**
 * Applies one event. Pure: `state` is not modified.
 *
 * @param options Bounds and the current time; a number is `membersMax` alone.
 * @example A restart replaces the stale spec
 * ```ts
 * import { initialState, step } from "@murmur/murmur/protocol";
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
  options?: number | StepOptions,
): StepResult {
  const o = normalize(options);
  switch (event.type) {
    case "seen":
      return mergeEntries(state, [{ spec: event.spec, status: "alive" }], o);
    case "gossip":
      return mergeEntries(state, event.entries, o);
    case "leave": {
      const mine = state.entries.get(state.self);
      if (mine === undefined || mine.status !== "alive") return unchanged(state);
      const d = new Draft(state);
      d.set(state.self, { spec: mine.spec, status: "left" }, o.now, Infinity);
      return {
        state: d.done(),
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
      const d = new Draft(state);
      d.set(state.self, { spec: event.spec, status: "alive" }, o.now, o.tombstonesMax);
      return {
        state: d.done(),
        changes: [{ name: state.self, kind: "added", spec: event.spec }],
        gossip: true,
        rejected: 0,
      };
    }
    case "retag": {
      const mine = state.entries.get(state.self);
      if (
        event.spec.name !== state.self || mine === undefined ||
        event.spec.incarnation !== mine.spec.incarnation ||
        (event.spec.tagsVersion ?? 0) <= (mine.spec.tagsVersion ?? 0)
      ) {
        throw new RangeError(
          "retag needs this node's spec at its incarnation with a higher tagsVersion",
        );
      }
      const d = new Draft(state);
      d.set(state.self, { spec: event.spec, status: mine.status }, o.now, o.tombstonesMax);
      return {
        state: d.done(),
        changes: [{ name: state.self, kind: "updated", spec: event.spec, previous: mine.spec }],
        gossip: true,
        rejected: 0,
      };
    }
    case "remove": {
      const d = new Draft(state);
      const changes: MembershipChange[] = [];
      for (const name of event.names) {
        const e = d.get(name);
        if (name === state.self || e === undefined || e.status !== "alive") continue;
        d.set(name, { spec: e.spec, status: "removed" }, o.now, o.tombstonesMax);
        changes.push({ name, kind: "removed", spec: e.spec });
      }
      if (changes.length === 0) return unchanged(state);
      changes.sort(byName);
      return { state: d.done(), changes, gossip: true, rejected: 0 };
    }
    case "expire": {
      const d = new Draft(state);
      for (const [name, at] of state.tombstonedAt) {
        if (at >= event.before) break; // oldest first
        if (name !== state.self) d.delete(name);
      }
      return { state: d.done(), changes: [], gossip: false, rejected: 0 };
    }
  }
}

function unchanged(state: MembershipState): StepResult {
  return { state, changes: [], gossip: false, rejected: 0 };
}

function byName(a: MembershipChange, b: MembershipChange): number {
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}

function mergeEntries(
  state: MembershipState,
  incoming: readonly MemberEntry[],
  o: Required<StepOptions>,
): StepResult {
  const d = new Draft(state);
  const changes: MembershipChange[] = [];
  let rejected = 0;
  let self: MemberEntry | undefined;
  let touched = false;
  for (const e of incoming) {
    const name = e.spec.name;
    const current = d.get(name);
    if (name === state.self) {
      // Nobody but this node speaks for itself: report, do not adopt.
      if (current !== undefined && supersedes(e, current) && (!self || supersedes(e, self))) {
        self = e;
      }
      continue;
    }
    if (current !== undefined && !supersedes(e, current)) continue;
    if (e.status === "alive" && current?.status !== "alive" && d.alive >= o.membersMax) {
      rejected++;
      continue;
    }
    d.set(name, e, o.now, o.tombstonesMax);
    touched = true;
    if (e.status !== "alive") {
      if (current?.status === "alive") changes.push({ name, kind: e.status, spec: e.spec });
    } else if (current === undefined || current.status !== "alive") {
      changes.push({ name, kind: "added", spec: e.spec });
    } else if (
      e.spec.incarnation === current.spec.incarnation && compareContent(e.spec, current.spec) === 0
    ) {
      changes.push({ name, kind: "updated", spec: e.spec, previous: current.spec });
    } else {
      changes.push({ name, kind: "replaced", spec: e.spec, previous: current.spec });
    }
  }
  const next = d.done();
  changes.sort(byName);
  // A new tombstone for an unknown name changes the view (it must spread) without a change.
  const r: StepResult = { state: next, changes, gossip: touched, rejected };
  return self === undefined ? r : { ...r, self };
}

/** What {@linkcode validateEntries} found. */
export interface ValidatedEntries {
  /** The valid entries. */
  entries: MemberEntry[];
  /** How many entries were invalid and dropped. */
  invalid: number;
}

const STATUS_BY_CODE: readonly MemberStatus[] = ["alive", "left", "removed"];

/**
 * Checks a gossiped entry list (`[[spec, status], ...]`, status 0 alive, 1
 * left, 2 removed). Invalid entries are dropped and counted; a list longer
 * than `entriesMax` is a protocol error.
 *
 * @example
 * ```ts
 * import { validateEntries } from "@murmur/murmur/protocol";
 * const spec = { name: "a", listenAddrs: [], incarnation: 1, channels: {} };
 * console.log(validateEntries([[spec, 0], ["junk", 0]])); // one entry, one invalid
 * ```
 */
export function validateEntries(
  v: unknown[],
  entriesMax: number = DEFAULT_MEMBERS_MAX + DEFAULT_TOMBSTONES_MAX,
): ValidatedEntries {
  if (v.length > entriesMax) {
    throw new ProtocolError(`gossip of ${v.length} entries is over the limit of ${entriesMax}`);
  }
  const entries: MemberEntry[] = [];
  let invalid = 0;
  for (const e of v) {
    const status = Array.isArray(e) && e.length === 2 && typeof e[1] === "number"
      ? STATUS_BY_CODE[e[1]]
      : undefined;
    if (status === undefined) {
      invalid++;
      continue;
    }
    try {
      entries.push({ spec: validateSpec((e as unknown[])[0]), status });
    } catch {
      invalid++;
    }
  }
  return { entries, invalid };
}

/**
 * The wire form of a state's entries, as {@linkcode validateEntries} reads it.
 *
 * @example
 * ```ts
 * import { entriesForWire, initialState } from "@murmur/murmur/protocol";
 * const s = initialState({ name: "a", listenAddrs: [], incarnation: 1, channels: {} });
 * console.log(entriesForWire(s).length); // 1
 * ```
 */
export function entriesForWire(state: MembershipState): [NodeSpec, number][] {
  const out: [NodeSpec, number][] = [];
  for (const e of state.entries.values()) out.push([e.spec, STATUS_BY_CODE.indexOf(e.status)]);
  return out;
}
