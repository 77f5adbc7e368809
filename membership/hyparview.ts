/**
 * The HyParView membership strategy (Leitão, Pereira, Rodrigues, DSN 2007):
 * each node keeps a small **active view** of neighbours it holds connections
 * to, and a larger **passive view** of addresses to replace them with. A new
 * node joins through any member, which spreads it by a random walk
 * (FORWARD_JOIN); a neighbour that fails is replaced from the passive view
 * (NEIGHBOR, with high priority when the active view is empty); periodic
 * SHUFFLE walks mix the passive views. Plumtree builds its trees over the
 * active views. No I/O: see {@linkcode MembershipStrategy}.
 *
 * Differences from the paper, for connection-oriented transports: a rejected
 * NEIGHBOR is answered by closing the requester's connection (it then tries
 * another passive node), and SHUFFLE replies travel back along the walk's path
 * instead of over a temporary connection. A contact flooded with JOINs sheds
 * them (see {@linkcode JOIN_EVICT_GAP_MS}); forwarded joiners join an active
 * view only once their connection is up.
 *
 * @module
 */

import type { Random } from "../base/clock.ts";
import {
  byName,
  HPV,
  type HyParViewConfig,
  type HyParViewOptions,
  INSIST_AFTER_SHUFFLES,
  JOIN_BACKLOG_DRAIN,
  JOIN_EVICT_GAP_MS,
  NEIGHBOR_ANSWER_MS,
  REPAIR_BACKOFF_MS,
  resolved,
  shufflePath,
  shuffleSpecs,
} from "./hyparview_options.ts";

export { HPV, type HyParViewConfig, type HyParViewOptions } from "./hyparview_options.ts";
import { ProtocolError } from "../base/errors.ts";
import { ForwardedJoiners, JoinBacklog, JoinRetry } from "./_hyparview_joins.ts";
import { LostNodes } from "./_hyparview_lost.ts";
import { KnownNodes } from "./_hyparview_known.ts";
import { Shuffles } from "./_hyparview_shuffle.ts";
import type { MemberEntry } from "./membership_state.ts";
import { type NodeSpec, validateSpec } from "./spec.ts";
import {
  type MembershipStrategy,
  newStrategyStats,
  noEffects,
  type StrategyEffects,
  type StrategyStats,
} from "./strategy.ts";

/**
 * The HyParView strategy.
 *
 * @example A node joins through another
 * ```ts
 * import { HyParView, seededRandom } from "@murmur/murmur/membership";
 * const spec = (name: string) => ({ name, incarnation: 1, listenAddrs: [], channels: {} });
 * const a = new HyParView(spec("a"), { random: seededRandom(1) });
 * const fx = a.join(spec("b"), 0); // connect to b, then greet it with JOIN
 * console.log(fx.connect.map((s) => s.name), a.greeting("b")); // [ "b" ] [ 0 ]
 * ```
 */
export class HyParView implements MembershipStrategy {
  readonly kind = "hyparview";
  readonly stats: StrategyStats = newStrategyStats();
  /** Forwarded joiners not dialed: past the bound per forwarding neighbour or in all. */
  get candidatesDropped(): number {
    return this.#joiners.dropped;
  }
  /** JOINs this node shed as a contact (placed by walks, not by taking them). */
  joinsShed = 0;
  readonly #o: Required<HyParViewOptions>;
  readonly #random: Random;
  #self: NodeSpec;
  #left = false;
  /** Neighbours, including those being connected. */
  readonly #active = new Map<string, NodeSpec>();
  /** Neighbours whose connection is up. */
  readonly #up = new Set<string>();
  readonly #passive = new Map<string, NodeSpec>();
  /** Specs heard of (who a name is, whom to ask), oldest first. */
  readonly #known: KnownNodes;
  /** What to say to a node when its connection comes up. */
  readonly #greet = new Map<string, unknown>();
  /**
   * Nodes asked to be neighbours at low priority, not confirmed yet (a close means "no"), with
   * when they were asked (no answer after NEIGHBOR_ANSWER_MS is a "no" too).
   */
  readonly #unconfirmed = new Map<string, number>();
  /** Requests to nodes only heard of (not passive members): forgotten if unreachable. */
  readonly #exploring = new Set<string>();
  /** Low-priority requests refused in a row, since when, and when the next may go. */
  #refusals = 0;
  #refusedSince = 0;
  #nextRepair = -Infinity;
  #nextRejoin = -Infinity;
  /** The shuffles (what the last one sent is evicted first when its reply comes). */
  readonly #shuffles: Shuffles;
  #nextShuffle = -Infinity;
  #lastShuffle = -Infinity;
  /** Nodes lost to a failure, since when (probed now and then: a partition may heal). */
  readonly #lost: LostNodes;
  /** Forwarded joiners being connected to, or waiting for a dial. */
  readonly #joiners = new ForwardedJoiners();
  /** Joiners whose walks wait for a neighbour (as a contact). */
  readonly #backlog = new JoinBacklog();
  /** This node's own join: its contact, and its backoff when shed. */
  readonly #joining = new JoinRetry();
  /** When this node last took a joiner at the cost of a neighbour. */
  #lastJoinEvict = -Infinity;

  /** Creates the strategy of the node `self`. */
  constructor(self: NodeSpec, config: HyParViewConfig) {
    this.#self = self;
    this.#o = resolved(config);
    this.#lost = new LostNodes(
      Math.max(8, this.#o.passiveViewSize),
      this.#o.lostTtlMs,
      this.#o.probeIntervalMs,
    );
    this.#random = config.random;
    this.#known = new KnownNodes(config.knownMax ?? 1024, () => this.#self.name);
    const current = () => this.#self;
    this.#shuffles = new Shuffles({
      get self() {
        return current();
      },
      options: this.#o,
      up: () => this.#up,
      activeView: () => this.#active.values(),
      passiveView: () => this.#passive.values(),
      pick: <T>(items: T[]) => this.#pick(items),
      sample: <T>(items: T[], n: number) => this.#sample(items, n),
      send: (fx, to, msg) => this.#send(fx, to, msg),
      learn: (spec) => this.#learn(spec),
      addPassive: (spec, preferEvict) => this.#addPassive(spec, preferEvict),
    });
  }

  /** The settings in force. */
  get options(): Readonly<Required<HyParViewOptions>> {
    return this.#o;
  }

  /** True unless this node left. */
  get active(): boolean {
    return !this.#left;
  }

  /** The active view (neighbours, connected or being connected), sorted. */
  activeView(): string[] {
    return [...this.#active.keys()].sort();
  }

  /** The passive view, sorted. */
  passiveView(): string[] {
    return [...this.#passive.keys()].sort();
  }

  /**
   * Self and the active view (neighbours, connected or being connected),
   * sorted: the seed's HyParView `members/0`. The passive view is
   * {@linkcode HyParView.passiveView}.
   */
  members(): string[] {
    if (this.#left) return [];
    return [this.#self.name, ...this.#active.keys()].sort();
  }

  /**
   * The spec of a node this node knows: self, the active and passive views,
   * and nodes heard of lately (handshakes, walks), which `send` and `call`
   * can reach over a direct connection.
   */
  entry(name: string): MemberEntry | undefined {
    const spec = name === this.#self.name
      ? this.#self
      : this.#active.get(name) ?? this.#passive.get(name) ?? this.#known.get(name);
    return spec === undefined ? undefined : { spec, status: "alive" };
  }

  /** Specs of self and the active view, sorted by name (as `members()`). */
  specs(): NodeSpec[] {
    if (this.#left) return [];
    return [this.#self, ...this.#active.values()].sort(byName);
  }

  /** Self, the active and the passive view, sorted by name (no tombstones): what an operator sees. */
  entries(): MemberEntry[] {
    if (this.#left) return [];
    return [this.#self, ...this.#active.values(), ...this.#passive.values()].sort(byName)
      .map((spec) => ({ spec, status: "alive" }));
  }

  /** True for a passive view entry (known, not connected). */
  passive(name: string): boolean {
    return this.#passive.has(name);
  }

  /** No tombstones: a partial view forgets. */
  tombstones(): number {
    return 0;
  }

  /** Joins through `spec`: connect to it, then greet it with JOIN. */
  join(spec: NodeSpec, _now: number): StrategyEffects {
    this.#learn(spec);
    const fx = noEffects();
    if (this.#left || spec.name === this.#self.name) return fx;
    this.#passive.delete(spec.name);
    if (!this.#active.has(spec.name) && this.#active.size >= this.#o.activeViewSize) {
      this.#evict(fx, spec);
    }
    this.#addActive(spec, [HPV.Join], fx);
    this.#joining.contact = spec.name;
    return fx;
  }

  /** A handshake told who `spec.name` is. A newer incarnation replaces the spec everywhere. */
  seen(spec: NodeSpec, _now: number): StrategyEffects {
    this.#learn(spec);
    this.#lost.alive(spec.name);
    const fx = noEffects();
    const old = this.#active.get(spec.name);
    if (old !== undefined && spec.incarnation > old.incarnation) {
      this.#active.set(spec.name, spec);
      this.#up.delete(spec.name);
      fx.disconnect.push({ name: spec.name, reason: "restarted", departed: false });
      fx.connect.push(spec);
      if (!this.#greet.has(spec.name)) this.#greet.set(spec.name, [HPV.Neighbor, 1]);
    }
    const p = this.#passive.get(spec.name);
    if (p !== undefined && spec.incarnation > p.incarnation) this.#passive.set(spec.name, spec);
    return fx;
  }

  /** A connection came up: a neighbour, or a stray one to close. */
  up(name: string, _now: number): StrategyEffects {
    const fx = noEffects();
    const candidate = this.#joiners.settle(name, fx.connect, (n) => this.#active.has(n));
    if (candidate !== undefined && !this.#active.has(name)) {
      // A forwarded joiner answered: proven, it takes a place (room made now, not before).
      if (this.#active.size >= this.#o.activeViewSize) this.#evict(fx, candidate.spec);
      this.#passive.delete(name);
      this.#active.set(name, candidate.spec);
      this.#greet.set(name, [HPV.Neighbor, 1]);
    }
    const probed = this.#lost.settle(name);
    if (probed !== undefined && !this.#active.has(name)) {
      // A lost node answered: it is back (a partition healed). It must be taken.
      if (this.#active.size >= this.#o.activeViewSize) this.#evict(fx, probed.spec);
      this.#active.set(name, probed.spec);
      this.#greet.set(name, [HPV.Neighbor, 1]);
    }
    if (this.#active.has(name)) {
      this.#up.add(name);
      if (name !== this.#joining.contact) this.#joining.placed();
      // Walks of joiners shed while no neighbour was up go out now, a few per neighbour.
      if (this.#backlog.size > 0) {
        for (const j of this.#backlog.take(JOIN_BACKLOG_DRAIN)) {
          if (j.name !== name) {
            this.#send(fx, name, [HPV.ForwardJoin, j, this.#o.activeRandomWalkLength]);
          }
        }
      }
    } else fx.disconnect.push({ name, reason: "not a neighbour", departed: false });
    return fx;
  }

  /** A neighbour's connection went down: it is gone; a passive node replaces it. */
  down(name: string, now: number): StrategyEffects {
    const fx = noEffects();
    const spec = this.#active.get(name);
    if (spec !== undefined && name === this.#joining.contact) {
      // The contact closed before taking this node: it shed the join (its walks
      // may place this node); join again after a backoff if none does.
      this.#dropActive(name);
      this.#nextRejoin = this.#joining.shed(now, this.#random);
      this.#repair(fx, now);
    } else if (spec !== undefined) {
      // A close before it confirmed a low-priority request is a refusal: it is alive, and full.
      if (this.#dropActive(name)!.unconfirmed) {
        this.#refused(spec, now);
      } else {
        this.#lost.lose(spec, now);
        this.#nextRepair = now; // a failure is replaced at once
      }
      this.#repair(fx, now);
    }
    // No reconnection attempts: HyParView replaces, it does not insist.
    fx.disconnect.push({ name, reason: "neighbour down", departed: false });
    return fx;
  }

  /** A low-priority request refused (or never answered): a passive candidate again, and a backoff. */
  #refused(spec: NodeSpec, now: number): void {
    this.#addPassive(spec);
    if (this.#refusals++ === 0) this.#refusedSince = now;
    this.#nextRepair = now + Math.min(
      this.#o.shuffleIntervalMs,
      REPAIR_BACKOFF_MS * 2 ** Math.min(this.#refusals, 16),
    );
  }

  /** A connection to `name` could not be made: drop it from both views, replace it. */
  unreachable(name: string, now: number): StrategyEffects {
    const fx = noEffects();
    if (this.#joiners.settle(name, fx.connect, (n) => this.#active.has(n)) !== undefined) {
      if (!this.#active.has(name)) {
        // An unproven joiner that does not answer: forgotten, nothing else changes.
        fx.disconnect.push({ name, reason: "forwarded joiner unreachable", departed: false });
        return fx;
      }
    }
    if (this.#lost.unreachable(name, now)) {
      fx.disconnect.push({ name, reason: "still unreachable", departed: false });
      return fx;
    }
    if (name === this.#joining.contact && !this.#joining.unreachable(name)) {
      this.#nextRejoin = now; // the next contact, at once
    }
    if (this.#exploring.has(name)) {
      // Only heard of, and gone (a mass failure leaves many such addresses): forgotten.
      this.#known.delete(name);
      this.#dropActive(name);
      fx.disconnect.push({ name, reason: "unreachable", departed: false });
      this.#repair(fx, now);
      return fx;
    }
    const spec = this.#active.get(name) ?? this.#passive.get(name);
    if (spec !== undefined) this.#lost.lose(spec, now);
    this.#passive.delete(name);
    if (this.#dropActive(name) !== undefined) {
      fx.disconnect.push({ name, reason: "unreachable", departed: false });
      this.#repair(fx, now);
    }
    return fx;
  }

  /** A HyParView message. Throws `ProtocolError` when malformed. */
  receive(from: string, msg: unknown, now: number): StrategyEffects {
    if (!Array.isArray(msg) || typeof msg[0] !== "number") {
      throw new ProtocolError("hyparview message is not [kind, ...]");
    }
    const fx = noEffects();
    if (this.#left) return fx;
    this.#lost.alive(from);
    switch (msg[0]) {
      case HPV.Join:
        this.#onJoin(from, fx, now);
        break;
      case HPV.ForwardJoin: {
        const ttl = msg[2];
        if (!Number.isInteger(ttl) || ttl < 0 || ttl > 1000) {
          throw new ProtocolError("FORWARD_JOIN ttl is not a small integer");
        }
        this.#onForwardJoin(from, validateSpec(msg[1]), ttl, fx);
        break;
      }
      case HPV.Neighbor:
        this.#onNeighbor(from, msg[1] === 1, fx, now);
        break;
      case HPV.Disconnect: {
        if (this.#dropActive(from) !== undefined) {
          const spec = this.#known.get(from);
          if (spec !== undefined) this.#addPassive(spec);
          fx.disconnect.push({ name: from, reason: "dropped by the neighbour", departed: false });
        }
        // The newcomer that took this node's place: link to it (low priority, no cascade).
        // Also when the closed connection was noticed first.
        const newcomer = msg[1] === undefined ? undefined : validateSpec(msg[1]);
        if (newcomer !== undefined) this.#learn(newcomer);
        if (
          newcomer !== undefined && newcomer.name !== this.#self.name &&
          !this.#active.has(newcomer.name) && this.#active.size < this.#o.activeViewSize
        ) {
          this.#addActive(newcomer, [HPV.Neighbor, this.#active.size === 0 ? 1 : 0], fx);
          // Until it answers, no other request goes out (the evicting node is full, for one).
          this.#unconfirmed.set(newcomer.name, now);
        }
        this.#repair(fx, now);
        break;
      }
      case HPV.Shuffle: {
        const [, ttl, specs, path] = msg;
        if (!Number.isInteger(ttl) || ttl < 0 || ttl > 1000) {
          throw new ProtocolError("SHUFFLE ttl is not a small integer");
        }
        this.#shuffles.received(
          from,
          ttl,
          shuffleSpecs(specs, () => void this.stats.invalidEntries++),
          shufflePath(path),
          fx,
        );
        break;
      }
      case HPV.ShuffleReply: {
        const [, specs, path] = msg;
        this.#shuffles.replied(
          shuffleSpecs(specs, () => void this.stats.invalidEntries++),
          shufflePath(path),
          fx,
        );
        break;
      }
      default:
        throw new ProtocolError(`unknown hyparview message kind ${msg[0]}`);
    }
    return fx;
  }

  /** Repairs the active view from the passive one; starts a shuffle when it is time. */
  tick(now: number): StrategyEffects {
    const fx = noEffects();
    if (this.#left) return fx;
    for (const [name, askedAt] of this.#unconfirmed) {
      if (now - askedAt < NEIGHBOR_ANSWER_MS) continue;
      // Asked long ago, never answered (a lost frame, a silent peer): given up as a refusal.
      const spec = this.#active.get(name);
      this.#unconfirmed.delete(name);
      if (spec === undefined) continue;
      this.#dropActive(name);
      this.#exploring.delete(name);
      this.#refused(spec, now);
      fx.disconnect.push({ name, reason: "neighbour request not answered", departed: false });
    }
    this.#repair(fx, now);
    this.#probe(fx, now);
    const i = this.#o.shuffleIntervalMs;
    if (this.#nextShuffle === -Infinity) {
      // The first one after a random part of the interval: nodes started together shuffle apart.
      this.#nextShuffle = now + i * this.#random.next();
    } else if (now >= this.#nextShuffle || this.#starved(now)) {
      this.#nextShuffle = now + i * (0.75 + this.#random.next() / 2);
      this.#lastShuffle = now;
      this.#shuffles.start(fx);
    }
    return fx;
  }

  /** Nothing is coalesced. */
  flush(_now: number): StrategyEffects {
    return noEffects();
  }

  /** What to say to `to` now that its connection is up (JOIN or NEIGHBOR), once. */
  greeting(to: string): unknown {
    const g = this.#greet.get(to);
    this.#greet.delete(to);
    return g;
  }

  /** Leaves: drops every neighbour (they replace this node) and forgets the views. */
  leave(_now: number): StrategyEffects {
    const fx = noEffects();
    if (this.#left) return fx;
    for (const name of this.#up) fx.sends.push({ to: name, msg: [HPV.Disconnect] });
    for (const name of this.#active.keys()) {
      fx.disconnect.push({ name, reason: "this node left", departed: true, graceful: true });
    }
    this.stats.gossipsOut += fx.sends.length;
    this.#left = true;
    this.#active.clear();
    this.#up.clear();
    this.#passive.clear();
    this.#greet.clear();
    this.#unconfirmed.clear();
    this.#lost.clear();
    return fx;
  }

  /** Forgets members by hand. */
  remove(names: readonly string[], now: number): StrategyEffects {
    const fx = noEffects();
    let repair = false;
    for (const n of names) {
      this.#passive.delete(n);
      if (this.#dropActive(n) !== undefined) {
        fx.disconnect.push({ name: n, reason: "removed by hand", departed: true });
        repair = true;
      }
      this.stats.membersRemoved++;
    }
    if (repair) this.#repair(fx, now);
    return fx;
  }

  /** Takes a new spec for this node (a rejoin after a leave, or a higher incarnation). */
  setSelf(spec: NodeSpec, _now: number): StrategyEffects {
    this.#self = spec;
    this.#left = false;
    return noEffects();
  }

  /**
   * Replaces every neighbour by passive members (an eclipse defence: the
   * caller saw its neighbours deliver nothing that a passive member got).
   * The neighbours rotated out are told (DISCONNECT) and forgotten, not kept
   * as passive candidates; the passive members are asked at high priority.
   */
  rotate(now: number, prefer?: string): StrategyEffects {
    const fx = noEffects();
    const preferred = prefer === undefined
      ? undefined
      : this.#passive.get(prefer) ?? this.#known.get(prefer);
    if (this.#left || (this.#passive.size === 0 && preferred === undefined)) return fx;
    for (const name of [...this.#active.keys()]) {
      if (name === prefer) continue;
      const was = this.#dropActive(name)!;
      if (was.up) this.#send(fx, name, [HPV.Disconnect]);
      fx.disconnect.push({ name, reason: "rotated out", departed: false, graceful: was.up });
    }
    // The member that showed what this node missed is asked first (it must accept).
    if (preferred !== undefined) this.#addActive(preferred, [HPV.Neighbor, 1], fx);
    this.#nextRepair = now;
    this.#repair(fx, now);
    return fx;
  }

  /** Nothing to probe: there are no tombstones. */
  probeCandidates(_count: number): NodeSpec[] {
    return [];
  }

  // ---------------------------------------------------------------- internals

  /**
   * Short of neighbours with no passive member left to ask (after a mass join
   * or failure): a shuffle now brings addresses, at most once per
   * {@linkcode REPAIR_BACKOFF_MS} times four.
   */
  #starved(now: number): boolean {
    return this.#active.size < this.#o.activeViewSize && this.#passive.size === 0 &&
      this.#up.size > 0 && now - this.#lastShuffle >= REPAIR_BACKOFF_MS * 4;
  }

  /**
   * Now and then, a high-priority NEIGHBOR to one lost node (unheard of since it
   * failed): if it answers, a partition has healed and the overlays merge.
   */
  #probe(fx: StrategyEffects, now: number): void {
    const spec = this.#lost.next(now, this.#random, (n) => this.#active.has(n));
    if (spec === undefined) return;
    // Connect first; only a node that answers takes a place in the active view (see up()).
    this.#passive.delete(spec.name);
    fx.connect.push(spec);
  }

  /** A node heard of that is neither a neighbour, a passive member nor known to have failed. */
  #heardOf(): NodeSpec | undefined {
    const failed = this.#lost.names();
    return this.#known.pick(
      this.#random,
      (n) => this.#active.has(n) || this.#passive.has(n) || failed.has(n),
    );
  }

  #learn(spec: NodeSpec): void {
    this.#known.learn(spec);
  }

  #pick<T>(items: T[]): T | undefined {
    return items.length === 0 ? undefined : items[Math.floor(this.#random.next() * items.length)];
  }

  #sample<T>(items: T[], n: number): T[] {
    const a = items.slice();
    const k = Math.min(n, a.length);
    for (let i = 0; i < k; i++) {
      const j = i + Math.floor(this.#random.next() * (a.length - i));
      [a[i], a[j]] = [a[j]!, a[i]!];
    }
    return a.slice(0, k);
  }

  #send(fx: StrategyEffects, to: string, msg: unknown): void {
    fx.sends.push({ to, msg });
    this.stats.gossipsOut++;
  }

  /** Adds a neighbour (the caller made room); greets it with `greeting` when up. */
  #addActive(spec: NodeSpec, greeting: unknown, fx: StrategyEffects): void {
    if (spec.name === this.#self.name || this.#active.has(spec.name)) return;
    this.#passive.delete(spec.name);
    this.#active.set(spec.name, spec);
    if (greeting !== undefined) this.#greet.set(spec.name, greeting);
    fx.connect.push(spec);
  }

  /** Takes `name` out of the active view; what it was (up, unconfirmed), or undefined if not in it. */
  #dropActive(name: string): { up: boolean; unconfirmed: boolean } | undefined {
    if (!this.#active.delete(name)) return undefined;
    this.#greet.delete(name);
    this.#exploring.delete(name);
    return { up: this.#up.delete(name), unconfirmed: this.#unconfirmed.delete(name) };
  }

  /**
   * Drops a random neighbour to make room for `newcomer`: it is told
   * (DISCONNECT, naming the newcomer, which it then asks to be its neighbour:
   * the dropped link is split in two rather than lost, so evictions cannot cut
   * a group of nodes off) and moves to the passive view.
   */
  #evict(fx: StrategyEffects, newcomer: NodeSpec, except?: string): void {
    const victim = this.#pick([...this.#active.keys()].filter((n) => n !== except));
    if (victim === undefined) return;
    const spec = this.#active.get(victim)!;
    const was = this.#dropActive(victim)!;
    this.#addPassive(spec);
    if (was.up) this.#send(fx, victim, [HPV.Disconnect, newcomer]);
    fx.disconnect.push({
      name: victim,
      reason: "dropped to make room",
      departed: false,
      graceful: was.up,
    });
  }

  #addPassive(spec: NodeSpec, preferEvict: readonly string[] = []): void {
    const name = spec.name;
    if (name === this.#self.name || this.#active.has(name) || this.#o.passiveViewSize === 0) return;
    const old = this.#passive.get(name);
    if (old !== undefined) {
      if (spec.incarnation > old.incarnation) this.#passive.set(name, spec);
      return;
    }
    if (this.#passive.size >= this.#o.passiveViewSize) {
      const victim = preferEvict.find((n) => this.#passive.has(n)) ??
        this.#pick([...this.#passive.keys()])!;
      this.#passive.delete(victim);
    }
    this.#passive.set(name, spec);
  }

  /**
   * Promotes passive nodes while the active view (connected or connecting) is
   * short. With no neighbour up, at high priority (it must be accepted), as
   * many as needed; otherwise one low-priority request at a time, and after a
   * refusal not before a backoff: when every node is full, a node one neighbour
   * short would otherwise ask around without end. After refusals in a row for
   * `INSIST_AFTER_SHUFFLES` shuffle intervals the next request is high
   * priority: a group whose members hold only each other (every node they know
   * being full) would otherwise stay cut off from the rest for good. Not
   * sooner: the node it joins drops a neighbour, which is then short itself, so
   * insisting moves a free slot around (and Plumtree's trees with it).
   */
  #repair(fx: StrategyEffects, now: number): void {
    if (this.#active.size === 0 && this.#passive.size === 0 && now >= this.#nextRejoin) {
      // Alone, with no address to try: join again through any node heard of,
      // those not known to have failed first.
      const lost = this.#lost.specs();
      const failed = new Set(lost.map((l) => l.name));
      const fresh = [...this.#known.values()].filter((k) => !failed.has(k.name));
      const spec = this.#joining.pick(fresh, lost, this.#random);
      if (spec !== undefined) {
        this.#nextRejoin = Math.max(this.#nextRejoin, now + REPAIR_BACKOFF_MS * 4);
        this.#addActive(spec, [HPV.Join], fx);
        this.#joining.contact = spec.name;
      }
      return;
    }
    while (this.#active.size < this.#o.activeViewSize) {
      const high = this.#up.size === 0 && this.#active.size === 0;
      // With no passive member left, a request goes to a node only heard of:
      // after a mass failure, a group whose views hold only each other and the
      // dead finds the living, and dead addresses are forgotten as they are
      // tried. Not while passive members are left: asking nodes that are full
      // moves links for nothing (a request every other time after a refusal
      // closed links under calls in small clusters).
      const explore = !high && this.#passive.size === 0;
      const heard = explore ? this.#heardOf() : undefined;
      if (heard === undefined && this.#passive.size === 0) return;
      // Two or more short (after a mass failure or join): insist at once. The
      // node asked makes room by splitting a link (its dropped neighbour links
      // to this node), so this node gains two neighbours and nobody loses one.
      const short = this.#active.size <= this.#o.activeViewSize - 2;
      if (!high && (this.#unconfirmed.size > 0 || (now < this.#nextRepair && !short))) return;
      const insist = !high && (short || (this.#refusals > 0 &&
        now - this.#refusedSince >= INSIST_AFTER_SHUFFLES * this.#o.shuffleIntervalMs));
      const spec = heard ?? this.#passive.get(this.#pick([...this.#passive.keys()])!)!;
      const name = spec.name;
      if (heard !== undefined) this.#exploring.add(name);
      this.#addActive(spec, [HPV.Neighbor, high || insist ? 1 : 0], fx);
      if (insist && !short) this.#refusals = 0;
      // One request at a time (but with none up): the next goes once this one is answered.
      if (!high) this.#unconfirmed.set(name, now);
    }
  }

  /**
   * A JOIN: the joiner takes a place here (a neighbour makes room, at most once
   * per {@linkcode JOIN_EVICT_GAP_MS}; past it the join is shed and the joiner's
   * connection closed) and a FORWARD_JOIN walk goes to every other neighbour up.
   * With none up, the walks wait in a bounded backlog.
   */
  #onJoin(from: string, fx: StrategyEffects, now: number): void {
    const spec = this.#known.get(from);
    if (spec === undefined || from === this.#self.name) return;
    if (!this.#active.has(from)) {
      const full = this.#active.size >= this.#o.activeViewSize;
      if (!full || now - this.#lastJoinEvict >= JOIN_EVICT_GAP_MS) {
        if (full) {
          this.#evict(fx, spec);
          this.#lastJoinEvict = now;
        }
        this.#addActive(spec, [HPV.Neighbor, 1], fx);
      } else {
        this.joinsShed++;
        this.#addPassive(spec);
        fx.disconnect.push({ name: from, reason: "join shed (forwarded)", departed: false });
      }
    }
    let walks = 0;
    for (const n of this.#up) {
      if (n === from) continue;
      this.#send(fx, n, [HPV.ForwardJoin, spec, this.#o.activeRandomWalkLength]);
      walks++;
    }
    if (walks === 0 && !this.#active.has(from)) this.#backlog.push(spec);
  }

  #onForwardJoin(from: string, spec: NodeSpec, ttl: number, fx: StrategyEffects): void {
    if (spec.name === this.#self.name) return;
    this.#learn(spec);
    const next = [...this.#up].filter((n) => n !== from && n !== spec.name);
    if (ttl === 0 || this.#active.size <= 1 || next.length === 0) {
      if (!this.#active.has(spec.name) && !this.#lost.probing(spec.name)) {
        this.#joiners.offer(spec, from, fx.connect);
      }
      return;
    }
    if (ttl === this.#o.passiveRandomWalkLength) this.#addPassive(spec);
    this.#send(fx, this.#pick(next)!, [HPV.ForwardJoin, spec, ttl - 1]);
  }

  #onNeighbor(from: string, high: boolean, fx: StrategyEffects, now: number): void {
    if (this.#active.has(from)) {
      if (this.#unconfirmed.delete(from)) {
        // It took this node: the confirmation. The next request may go.
        this.#exploring.delete(from);
        this.#refusals = 0;
        this.#repair(fx, now);
      }
      if (from === this.#joining.contact) this.#joining.placed(); // the contact took it
      return;
    }
    const spec = this.#known.get(from);
    if (spec === undefined) return;
    if (this.#joiners.settle(from, fx.connect, (n) => this.#active.has(n)) !== undefined) {
      // A forwarded joiner being dialed asked first: it is proven (it is connected), and the
      // walk meant this node to take it.
      high = true;
    }
    if (this.#active.size < this.#o.activeViewSize || high) {
      if (this.#active.size >= this.#o.activeViewSize) this.#evict(fx, spec, from);
      // Connects back; NEIGHBOR on that connection confirms to the requester.
      this.#addActive(spec, [HPV.Neighbor, 1], fx);
      return;
    }
    // Refused: closing its connection tells it; it stays a passive candidate here.
    this.#addPassive(spec);
    fx.disconnect.push({ name: from, reason: "neighbour request refused", departed: false });
  }
}
