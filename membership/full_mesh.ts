/**
 * The full-mesh membership strategy (the seed's default peer service manager):
 * every node knows every member and keeps a connection to each. The view is
 * the CRDT of {@linkcode step}; changes are pushed at once to `gossipFanout`
 * random peers that are up. Every `gossipIntervalMs` a digest of the view (a
 * hash) goes to as many peers while the view changed in the last three
 * rounds, to one random peer once it has been quiet (push-pull anti-entropy),
 * and only a peer whose view differs answers
 * with its whole view (and gets this one's back when it lacks something):
 * idle gossip costs one small frame per node per round, whatever the size of
 * the cluster.
 * A member down (or never reached) for `deadMemberRemoveMs` is removed by a
 * tombstone that gossip spreads; tombstones are forgotten after
 * `tombstoneTtlMs`. No I/O: see {@linkcode MembershipStrategy}.
 *
 * @module
 */

import * as D from "./defaults.ts";

/** Peers that get the periodic digest in a quiet round (pushes of changes go to `gossipFanout`). */
const DIGEST_FANOUT = 1;
/** Rounds after a change of the view during which digests still go to `gossipFanout` peers. */
const DIGEST_BUSY_ROUNDS = 3;
import type { Random } from "../base/clock.ts";
import { formatAddress } from "./transport.ts";
import {
  DEFAULT_MEMBERS_MAX,
  DEFAULT_TOMBSTONES_MAX,
  entriesForWire,
  initialState,
  type MemberEntry,
  members as viewMembers,
  type MembershipEvent,
  type MembershipState,
  step,
  validateEntries,
} from "./membership_state.ts";
import type { NodeSpec } from "./spec.ts";
import { ProtocolError } from "../base/errors.ts";
import {
  type MembershipStrategy,
  newStrategyStats,
  noEffects,
  type StrategyEffects,
  type StrategyStats,
} from "./strategy.ts";

/** Options of {@linkcode FullMesh}. */
export interface FullMeshConfig {
  /** Randomness for the choice of gossip peers. */
  random: Random;
  /**
   * Live members in the view.
   *
   * @default 4096
   */
  membersMax?: number;
  /**
   * Tombstones in the view.
   *
   * @default 4096
   */
  tombstonesMax?: number;
  /**
   * A member down or never reached this long is removed.
   *
   * @default 60000
   */
  deadMemberRemoveMs?: number;
  /**
   * Tombstones are forgotten after this long.
   *
   * @default 600000
   */
  tombstoneTtlMs?: number;
  /**
   * Period of whole-view gossip.
   *
   * @default 1000
   */
  gossipIntervalMs?: number;
  /**
   * Peers that receive each gossip round.
   *
   * @default 4
   */
  gossipFanout?: number;
}

function sample<T>(items: T[], n: number, random: Random): T[] {
  if (items.length <= n) return items;
  const a = items.slice();
  for (let i = 0; i < n; i++) {
    const j = i + Math.floor(random.next() * (a.length - i));
    [a[i], a[j]] = [a[j]!, a[i]!];
  }
  return a.slice(0, n);
}

/** First element of a digest message, and of a view answering one. */
const DIGEST = "d";
const VIEW = "v";
const STATUS_CODE = { alive: 0, left: 1, removed: 2 } as const;

/**
 * An order-independent 64-bit digest of view entries (name, incarnation,
 * status, addresses), as 16 hex digits: the sum of one FNV-1a hash per entry.
 */
function digestOf(entries: Iterable<MemberEntry>): string {
  let lo = 0, hi = 0;
  for (const e of entries) {
    const s = e.spec;
    let key = `${s.name}\u0000${s.incarnation}\u0000${e.status}`;
    for (const a of s.listenAddrs) key += `\u0000${a.hostname}:${a.port}`;
    if (s.tagsVersion) key += `\u0000t${s.tagsVersion}`;
    let h1 = 0x811c9dc5, h2 = 0xcbf29ce4;
    for (let i = 0; i < key.length; i++) {
      const c = key.charCodeAt(i);
      h1 = Math.imul(h1 ^ c, 0x01000193);
      h2 = Math.imul(h2 ^ c, 0x0100019d);
    }
    lo = (lo + (h1 >>> 0)) >>> 0;
    hi = (hi + (h2 >>> 0)) >>> 0;
  }
  return hi.toString(16).padStart(8, "0") + lo.toString(16).padStart(8, "0");
}

function sameAddresses(a: NodeSpec, b: NodeSpec): boolean {
  return a.listenAddrs.length === b.listenAddrs.length &&
    a.listenAddrs.every((x, i) =>
      x.hostname === b.listenAddrs[i]!.hostname && x.port === b.listenAddrs[i]!.port
    );
}

/**
 * The full-mesh strategy.
 *
 * @example Two nodes learn of a third by gossip
 * ```ts
 * import { FullMesh, seededRandom } from "@murmur/murmur/membership";
 * const spec = (name: string) => ({ name, incarnation: 1, listenAddrs: [], channels: {} });
 * const a = new FullMesh(spec("a"), { random: seededRandom(1) });
 * const b = new FullMesh(spec("b"), { random: seededRandom(2) });
 * b.seen(spec("c"), 0);
 * a.seen(spec("b"), 0);
 * a.receive("b", b.greeting("a"), 0);
 * console.log(a.members()); // [ "a", "b", "c" ]
 * ```
 */
export class FullMesh implements MembershipStrategy {
  readonly kind = "full-mesh";
  readonly stats: StrategyStats = newStrategyStats();
  readonly #random: Random;
  readonly #membersMax: number;
  readonly #tombstonesMax: number;
  readonly #deadMemberRemoveMs: number;
  readonly #tombstoneTtlMs: number;
  readonly #gossipIntervalMs: number;
  readonly #fanout: number;
  #self: NodeSpec;
  #view: MembershipState;
  #left = false;
  readonly #up = new Set<string>();
  /** Live members that are not up, and since when (added, or went down). */
  readonly #downSince = new Map<string, number>();
  #dirty = false;
  #lastRound = -Infinity;
  /** When the view last changed (digests go wide for a few rounds after). */
  #changedAt = -Infinity;
  /** Names whose entries changed since the last push (what a push carries). */
  readonly #changed = new Set<string>();
  #digestOf: MembershipState | undefined;
  #digestValue = "";
  /** Foreign claims on this node's name already reported, by incarnation. */
  readonly #claimsReported = new Set<number>();

  /** Creates the strategy of the node `self`. */
  constructor(self: NodeSpec, config: FullMeshConfig) {
    this.#self = self;
    this.#view = initialState(self);
    this.#random = config.random;
    this.#membersMax = config.membersMax ?? DEFAULT_MEMBERS_MAX;
    this.#tombstonesMax = config.tombstonesMax ?? DEFAULT_TOMBSTONES_MAX;
    this.#deadMemberRemoveMs = config.deadMemberRemoveMs ?? D.DEFAULT_DEAD_MEMBER_REMOVE_MS;
    this.#tombstoneTtlMs = config.tombstoneTtlMs ?? D.DEFAULT_TOMBSTONE_TTL_MS;
    this.#gossipIntervalMs = config.gossipIntervalMs ?? D.DEFAULT_GOSSIP_INTERVAL_MS;
    this.#fanout = config.gossipFanout ?? D.DEFAULT_GOSSIP_FANOUT;
  }

  /** The CRDT state (read it, do not change it). */
  get view(): MembershipState {
    return this.#view;
  }

  /** True unless this node left. */
  get active(): boolean {
    return !this.#left;
  }

  /** Every live member, self included (none after a leave), sorted. */
  members(): string[] {
    return this.#left ? [] : viewMembers(this.#view);
  }

  /** The entry known for `name`. */
  entry(name: string): MemberEntry | undefined {
    return this.#view.entries.get(name);
  }

  /** Specs of the live members, sorted by name. */
  specs(): NodeSpec[] {
    if (this.#left) return [];
    const out: NodeSpec[] = [];
    for (const e of this.#view.entries.values()) if (e.status === "alive") out.push(e.spec);
    return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  /** Members and tombstones, sorted by name. */
  entries(): MemberEntry[] {
    return [...this.#view.entries.values()]
      .sort((a, b) => (a.spec.name < b.spec.name ? -1 : a.spec.name > b.spec.name ? 1 : 0));
  }

  /** Number of tombstones held. */
  tombstones(): number {
    return this.#view.tombstonedAt.size;
  }

  /** Joining through a node is seeing it. */
  join(spec: NodeSpec, now: number): StrategyEffects {
    return this.seen(spec, now);
  }

  /** Merges an authenticated node's spec. */
  seen(spec: NodeSpec, now: number): StrategyEffects {
    if (this.#left) return noEffects();
    return this.#apply({ type: "seen", spec }, now);
  }

  /** A peer came up. */
  up(name: string, _now: number): StrategyEffects {
    this.#up.add(name);
    this.#downSince.delete(name);
    return noEffects();
  }

  /** A peer went down. */
  down(name: string, now: number): StrategyEffects {
    this.#up.delete(name);
    if (this.#view.entries.get(name)?.status === "alive" && !this.#downSince.has(name)) {
      this.#downSince.set(name, now);
    }
    return noEffects();
  }

  /**
   * Gossip: a pushed view (`[[spec, status], ...]`), a digest (`["d", hash]`),
   * or a view answering a digest (`["v", entries]`).
   */
  receive(_from: string, msg: unknown, now: number): StrategyEffects {
    if (!Array.isArray(msg)) throw new ProtocolError("full-mesh gossip is not an entry list");
    if (msg[0] === DIGEST) {
      const fx = noEffects();
      if (typeof msg[1] !== "string") throw new ProtocolError("full-mesh digest is not a string");
      if (!this.#left && msg[1] !== this.#digest()) {
        fx.sends.push({ to: _from, msg: [VIEW, entriesForWire(this.#view)] });
        this.stats.gossipsOut++;
      }
      return fx;
    }
    const answer = msg[0] === VIEW;
    const list = answer ? msg[1] : msg;
    if (!Array.isArray(list)) throw new ProtocolError("full-mesh gossip is not an entry list");
    const { entries, invalid } = validateEntries(list, this.#membersMax + this.#tombstonesMax);
    if (this.#left) return noEffects();
    const fx = this.#apply({ type: "gossip", entries }, now);
    if (answer && this.#digest() !== digestOf(entries)) {
      // It answered this node's digest and lacks something this node has: push the view back.
      fx.sends.push({ to: _from, msg: entriesForWire(this.#view) });
      this.stats.gossipsOut++;
    }
    if (invalid > 0) {
      this.stats.invalidEntries += invalid;
      fx.logs.push({
        level: "warn",
        msg: `${invalid} invalid gossip entries dropped`,
        peer: _from,
      });
    }
    return fx;
  }

  /** Reaps members down for too long, forgets old tombstones, gossips every `gossipIntervalMs`. */
  tick(now: number): StrategyEffects {
    if (this.#left) return noEffects();
    const dead: string[] = [];
    for (const [name, since] of this.#downSince) {
      if (now - since >= this.#deadMemberRemoveMs) dead.push(name);
    }
    const fx = dead.length > 0 ? this.#apply({ type: "remove", names: dead }, now) : noEffects();
    if (dead.length > 0) {
      fx.logs.push({
        level: dead.length > 1 ? "warn" : "info",
        msg:
          `removed ${dead.length} member(s) down or unreachable for ${this.#deadMemberRemoveMs} ms` +
          (dead.length <= 8 ? `: ${dead.join(", ")}` : ""),
      });
    }
    if (this.#view.tombstonedAt.size > 0) {
      this.#view = step(this.#view, { type: "expire", before: now - this.#tombstoneTtlMs }).state;
    }
    if (now - this.#lastRound >= this.#gossipIntervalMs) {
      this.#lastRound = now;
      this.#round(fx, this.#dirty, now);
      this.#dirty = false;
    }
    return fx;
  }

  /** Pushes the view to `gossipFanout` random peers if it changed since the last push. */
  flush(now: number): StrategyEffects {
    const fx = noEffects();
    if (!this.#dirty || this.#left) return fx;
    this.#dirty = false;
    this.#round(fx, true, now);
    return fx;
  }

  /** The whole view, for a peer that just came up. */
  greeting(_to: string): unknown {
    return entriesForWire(this.#view);
  }

  /** Leaves: the view marks this node as departed and goes to every peer that is up. */
  leave(now: number): StrategyEffects {
    if (this.#left) return noEffects();
    const fx = this.#apply({ type: "leave" }, now);
    fx.flush = false;
    this.#dirty = false;
    const msg = entriesForWire(this.#view);
    // Every member, not only those whose connection this node saw come up: right after a
    // member joined this node, the link it opened may be the only one (the node sends on
    // any open link).
    for (const name of viewMembers(this.#view)) {
      if (name !== this.#self.name) fx.sends.push({ to: name, msg });
    }
    this.stats.gossipsOut += fx.sends.length;
    for (const name of viewMembers(this.#view)) {
      if (name !== this.#self.name) {
        fx.disconnect.push({ name, reason: "this node left", departed: true });
      }
    }
    this.#left = true;
    this.#up.clear();
    this.#downSince.clear();
    this.#view = step(initialState(this.#self), { type: "leave" }).state;
    return fx;
  }

  /** Removes members by hand. */
  remove(names: readonly string[], now: number): StrategyEffects {
    return this.#apply({ type: "remove", names }, now);
  }

  /** Takes a new spec for this node (a rejoin after a leave, or a refutation). */
  setSelf(spec: NodeSpec, now: number): StrategyEffects {
    const retag = !this.#left && spec.incarnation === this.#self.incarnation;
    this.#self = spec;
    if (retag) return this.#apply({ type: "retag", spec }, now);
    if (this.#left) {
      this.#left = false;
      this.#view = initialState(spec);
      this.#changed.add(spec.name);
      this.#dirty = true;
      this.#changedAt = now;
      return { ...noEffects(), flush: true };
    }
    return this.#apply({ type: "rejoin", spec }, now);
  }

  /** Up to `count` random removed members, to probe for a healed partition. */
  probeCandidates(count: number): NodeSpec[] {
    const removed: NodeSpec[] = [];
    for (const [name] of this.#view.tombstonedAt) {
      const e = this.#view.entries.get(name);
      if (e?.status === "removed" && e.spec.listenAddrs.length > 0) removed.push(e.spec);
    }
    return sample(removed, count, this.#random);
  }

  /**
   * Pushes what changed since the last push (after a change) to
   * `gossipFanout` peers, or a digest (a periodic round) to as many while the
   * view is changing and to one once it is quiet.
   */
  #round(fx: StrategyEffects, push: boolean, now: number): void {
    const up = [...this.#up];
    if (up.length === 0) return;
    let msg: unknown;
    if (push) {
      const delta: [NodeSpec, number][] = [];
      for (const name of this.#changed) {
        const e = this.#view.entries.get(name);
        if (e !== undefined) delta.push([e.spec, STATUS_CODE[e.status]]);
      }
      this.#changed.clear();
      if (delta.length === 0) return;
      msg = delta;
    } else msg = [DIGEST, this.#digest()];
    // Digests go to gossipFanout peers while the view is changing (joins spread fast), to one
    // when it has been quiet for a few rounds (an idle node's gossip does not grow).
    const busy = now - this.#changedAt <= DIGEST_BUSY_ROUNDS * this.#gossipIntervalMs;
    const fanout = push || busy ? this.#fanout : DIGEST_FANOUT;
    for (const name of sample(up, fanout, this.#random)) fx.sends.push({ to: name, msg });
    this.stats.gossipsOut += Math.min(up.length, fanout);
  }

  /** The digest of the current view (computed once per view). */
  #digest(): string {
    if (this.#digestOf !== this.#view) {
      this.#digestOf = this.#view;
      this.#digestValue = digestOf(this.#view.entries.values());
    }
    return this.#digestValue;
  }

  #apply(event: MembershipEvent, now: number): StrategyEffects {
    const r = step(this.#view, event, {
      membersMax: this.#membersMax,
      tombstonesMax: this.#tombstonesMax,
      now,
    });
    const fx = noEffects();
    if (r.rejected > 0) {
      this.stats.membersRejected += r.rejected;
      fx.logs.push({
        level: "warn",
        msg: `${r.rejected} members ignored: membersMax (${this.#membersMax}) reached`,
      });
    }
    if (r.self !== undefined) this.#onSelfClaim(r.self, fx);
    if (r.state === this.#view) return fx;
    const old = this.#view;
    this.#view = r.state;
    for (const c of r.changes) {
      if (c.name === this.#self.name) continue;
      fx.changes.push(c);
      if (c.kind === "updated") continue; // new tags: connections stay
      if (c.kind === "added") {
        this.#downSince.set(c.name, now);
        fx.connect.push(c.spec);
      } else if (c.kind === "replaced") {
        this.#up.delete(c.name);
        this.#downSince.set(c.name, now);
        fx.disconnect.push({
          name: c.name,
          reason: `restarted with incarnation ${c.spec.incarnation}`,
          departed: false,
        });
        fx.connect.push(c.spec);
      } else {
        if (c.kind === "removed") this.stats.membersRemoved++;
        this.#up.delete(c.name);
        this.#downSince.delete(c.name);
        fx.disconnect.push({
          name: c.name,
          reason: c.kind === "left" ? "left the cluster" : "removed from the cluster",
          departed: true,
        });
      }
    }
    if (r.gossip) {
      // What to push: every name whose entry differs now (tombstones of unknown names too).
      for (const [name, e] of r.state.entries) {
        if (old.entries.get(name) !== e) this.#changed.add(name);
      }
      if (this.#changed.size > this.#membersMax + this.#tombstonesMax) this.#changed.clear();
      this.#dirty = true;
      this.#changedAt = now;
      fx.flush = true;
    }
    return fx;
  }

  /** A peer's entry about this node supersedes its own. */
  #onSelfClaim(e: MemberEntry, fx: StrategyEffects): void {
    const mine = this.#self;
    if (e.status !== "alive") {
      // A peer thought this node dead (or gone): refute with a higher incarnation.
      fx.refute = {
        above: e.spec.incarnation,
        reason: `the cluster has this node ${e.status} at incarnation ${e.spec.incarnation}`,
      };
    } else if (sameAddresses(e.spec, mine)) {
      // This node's own former life (restarted with a lower incarnation): move past it.
      fx.refute = {
        above: e.spec.incarnation,
        reason: `a former run of this node had incarnation ${e.spec.incarnation}`,
      };
    } else if (!this.#claimsReported.has(e.spec.incarnation)) {
      this.#claimsReported.add(e.spec.incarnation);
      fx.logs.push({
        level: "warn",
        msg: `another process claims this node's name at ${
          e.spec.listenAddrs.map(formatAddress).join(", ")
        } (incarnation ${e.spec.incarnation}); peers that reach it first refuse this one`,
      });
    }
  }
}
