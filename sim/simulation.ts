/**
 * A deterministic simulator of murmur clusters: the real protocol cores (the
 * {@linkcode HyParView} and {@linkcode FullMesh} membership strategies and
 * {@linkcode PlumtreeCore}, the code production runs) for thousands of nodes
 * in virtual time, with no TCP, no handshakes and no encoding. The network is
 * modelled as a node's {@linkcode Node} sees it: directed links that come up
 * after a connect round trip, carry frames in order with seeded latency, break
 * when either side closes them, and fall silent (detected after
 * `failureTimeoutMs`) when a peer crashes or a partition cuts them.
 *
 * The same options and seed give the same run, event for event.
 *
 * @example
 * ```ts
 * import { Simulation } from "@murmur/murmur/protocol";
 * const sim = new Simulation({ seed: 1, strategy: "hyparview" });
 * for (let i = 0; i < 20; i++) sim.addNode();
 * sim.runFor(10_000);
 * const id = sim.broadcast(sim.liveNodes()[0]!);
 * sim.runFor(5_000);
 * console.log(sim.report(id).missed); // 0
 * ```
 *
 * @module
 */

import {
  DEFAULT_CONNECT_TIMEOUT_MS,
  DEFAULT_DEAD_MEMBER_REMOVE_MS,
  DEFAULT_FAILURE_TIMEOUT_MS,
  DEFAULT_GOSSIP_INTERVAL_MS,
  DEFAULT_PING_INTERVAL_MS,
} from "../membership/defaults.ts";
import { DEFAULT_LAZY_TICK_MS } from "../broadcast/defaults.ts";
import { type Random, seededRandom } from "../base/clock.ts";
import { FullMesh } from "../membership/full_mesh.ts";
import { HyParView, type HyParViewOptions } from "../membership/hyparview.ts";
import { type NodeSpec, validateSpec } from "../membership/spec.ts";
import {
  applyEffects,
  type EffectsHost,
  type MembershipStrategy,
  type StrategyEffects,
} from "../membership/strategy.ts";
import { type PlumtreeHandlers, receivePlumtree } from "../broadcast/dispatch.ts";
import { PlumtreeCore, type PlumtreeCoreOptions } from "../broadcast/plumtree_core.ts";
import { type PlumtreeMessage, PT, type Send } from "../broadcast/wire.ts";
import { EventQueue } from "./_queue.ts";
import { SimLinks } from "./_links.ts";
import { BroadcastTable, SIM_HANDLER } from "./_broadcasts.ts";
import { overlayShape, staleNeighbours } from "./_measure.ts";
import { encodeValue } from "../base/codec.ts";
import { type SimCore, type SimKeysUpdate, SimPublishers } from "./_publishers.ts";

export type { SimKeysUpdate, SimPublisherOptions } from "./_publishers.ts";
import type {
  BroadcastReport,
  CrashKind,
  OverlayShape,
  SimNode,
  SimulationCounters,
  SimulationOptions,
} from "./_simulation_types.ts";
export type {
  BroadcastReport,
  CrashKind,
  OverlayShape,
  SimulationCounters,
  SimulationOptions,
} from "./_simulation_types.ts";

/**
 * The simulator's reconnection delay after a failure (its one setting a node
 * has no equivalent of: a node backs off between `reconnectBackoffMinMs` and
 * `reconnectBackoffMaxMs`).
 */
const SIM_RECONNECT_MS = 1000;

/** A simulated cluster. */
export class Simulation {
  readonly #o:
    & Required<
      Omit<SimulationOptions, "hyparview" | "plumtree" | "publishers" | "measureBytes">
    >
    & {
      hyparview: HyParViewOptions;
      plumtree: Omit<PlumtreeCoreOptions, "random">;
    };
  readonly #q = new EventQueue();
  readonly #random: Random;
  readonly #nodes: SimNode[] = [];
  readonly #byName = new Map<string, SimNode>();
  /** The live nodes, in the order they were added. */
  readonly #live: SimNode[] = [];
  readonly #links: SimLinks;
  readonly #pubs: SimPublishers | undefined;
  /** Whether `counters.bytes` counts (see the option; may be switched on for a window). */
  measureBytes: boolean;
  /** Encoded sizes of message objects sent to several peers. */
  readonly #sizes = new WeakMap<object, number>();
  readonly #broadcasts = new BroadcastTable(this.#nodes);
  #now = 0;
  readonly #clock = (): number => this.#now;
  /** Counters. */
  readonly counters: SimulationCounters = {
    frames: 0,
    membershipFrames: 0,
    plumtreeFrames: 0,
    publisherFrames: 0,
    bytes: 0,
    lost: 0,
    events: 0,
  };

  /** Creates an empty cluster. */
  constructor(options: SimulationOptions) {
    this.#o = {
      seed: options.seed,
      strategy: options.strategy,
      hyparview: options.hyparview ?? {},
      plumtree: options.plumtree ?? {},
      latencyMs: options.latencyMs ?? [10, 50],
      loss: options.loss ?? 0,
      pingIntervalMs: options.pingIntervalMs ?? DEFAULT_PING_INTERVAL_MS,
      failureTimeoutMs: options.failureTimeoutMs ?? DEFAULT_FAILURE_TIMEOUT_MS,
      connectTimeoutMs: options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS,
      reconnectMs: options.reconnectMs ?? SIM_RECONNECT_MS,
      lazyTickMs: options.lazyTickMs ?? DEFAULT_LAZY_TICK_MS,
      gossipIntervalMs: options.gossipIntervalMs ?? DEFAULT_GOSSIP_INTERVAL_MS,
      deadMemberRemoveMs: options.deadMemberRemoveMs ?? DEFAULT_DEAD_MEMBER_REMOVE_MS,
    };
    this.measureBytes = options.measureBytes ?? false;
    if (options.strategy !== "hyparview" && options.strategy !== "full-mesh") {
      throw new TypeError(`unknown strategy ${JSON.stringify(options.strategy)}`);
    }
    const [lo, hi] = this.#o.latencyMs;
    if (!(lo >= 0 && hi >= lo)) {
      throw new RangeError("latencyMs must be [min, max] with 0 <= min <= max");
    }
    if (!(this.#o.loss >= 0 && this.#o.loss < 1)) throw new RangeError("loss must be in [0, 1)");
    for (
      const k of [
        "pingIntervalMs",
        "failureTimeoutMs",
        "connectTimeoutMs",
        "reconnectMs",
        "lazyTickMs",
        "gossipIntervalMs",
        "deadMemberRemoveMs",
      ] as const
    ) {
      const v = this.#o[k];
      if (!(v > 0 && Number.isFinite(v))) {
        throw new RangeError(`${k} must be a positive number of ms, got ${v}`);
      }
    }
    this.#random = seededRandom(options.seed);
    this.#links = new SimLinks({
      queue: this.#q,
      random: this.#random,
      counters: this.counters,
      options: this.#o,
      now: () => this.#now,
      node: (name) => this.#byName.get(name),
      apply: (n, fx) => this.#apply(n, fx),
      up: (n, to) => this.#onUp(n, to),
      down: (n, to) => this.#onDown(n, to),
      receive: (t, from, msg, kind) => {
        if (kind === 1) this.#receivePt(t, from, msg as PlumtreeMessage);
        else if (kind === 0) this.#apply(t, t.strategy.receive(from, msg, this.#now));
        else this.#pubs!.receive(t, from, msg, kind);
      },
      size: (msg) => this.measureBytes ? this.#size(msg) : undefined,
    });
    if (options.publishers !== undefined) {
      this.#pubs = new SimPublishers(
        {
          now: () => this.#now,
          at: (delay, fn) => this.#at(delay, fn),
          every: (n, period, fn) => this.#every(this.#nodes[n.index]!, period, fn),
          send: (n, to, msg, kind) => this.#links.send(this.#nodes[n.index]!, to, msg, kind),
          node: (name) => this.#byName.get(name),
          cut: (a, b) => this.#links.cut(this.#nodes[a.index]!, this.#nodes[b.index]!),
          latency: () => this.#links.latency(),
          connectTimeoutMs: this.#o.connectTimeoutMs,
          lazyTickMs: this.#o.lazyTickMs,
        },
        options.publishers,
        options.seed,
      );
    }
  }

  /**
   * Node `name` tracks and untracks keys in the simulated publisher scope
   * (with `publishers` on).
   */
  publish(name: string, update: SimKeysUpdate): void {
    const n = this.#byName.get(name);
    if (this.#pubs === undefined) throw new TypeError("publish() needs the publishers option");
    if (n === undefined || !n.alive) throw new Error(`${name} is not a live node`);
    this.#pubs.update(n, update);
  }

  /** The publisher core of node `name` (with `publishers` on). */
  publisher(name: string): SimCore | undefined {
    const n = this.#byName.get(name);
    return n === undefined ? undefined : this.#pubs?.core(n.index);
  }

  /**
   * Publisher convergence: the live nodes whose view differs from the truth
   * (every live node's data, at its last sequence), and the entries of dead
   * nodes still shown (counted over every live node's view).
   */
  publisherState(): { differing: number; stale: number } {
    if (this.#pubs === undefined) {
      throw new TypeError("publisherState() needs the publishers option");
    }
    return this.#pubs.state(this.#live, (name) => this.#byName.get(name)?.alive === true);
  }

  /** Virtual time, in ms. */
  get now(): number {
    return this.#now;
  }

  /** Names of the live nodes, in the order they were added. */
  liveNodes(): string[] {
    return this.#live.map((n) => n.name);
  }

  /** The active view (HyParView) or connected peers of a node. */
  neighbours(name: string): string[] {
    return [...(this.#byName.get(name)?.up ?? [])].sort();
  }

  /** A node's state, for diagnostics: its strategy, its links, and its Plumtree neighbours. */
  inspect(name: string): {
    strategy: MembershipStrategy;
    up: string[];
    wanted: string[];
    inbound: string[];
    plumtree: string[];
    alive: boolean;
  } | undefined {
    const n = this.#byName.get(name);
    if (n === undefined) return undefined;
    return {
      strategy: n.strategy,
      up: [...n.up].sort(),
      wanted: [...n.wanted.keys()].sort(),
      inbound: [...n.inbound].sort(),
      plumtree: n.pt.neighbours(),
      alive: n.alive,
    };
  }

  /** The members a node knows. */
  members(name: string): string[] {
    return this.#byName.get(name)?.strategy.members() ?? [];
  }

  /**
   * Adds a node; it joins through `contact` (default: a random live node) at once.
   * Returns its name.
   */
  addNode(contact?: string): string {
    const index = this.#nodes.length;
    const name = `n${index}`;
    // Validated once: the copy is what travels (as a node's spec arrives decoded and checked).
    const spec: NodeSpec = validateSpec({
      name,
      incarnation: 1,
      // 50,000 ports per host address (node n60000 is 10.0.1.1:20000): past 55,536 nodes the
      // ports of one address ran out (--huge).
      listenAddrs: [{
        hostname: `10.0.${Math.floor(index / 50_000)}.1`,
        port: 10_000 + (index % 50_000),
      }],
      channels: {},
    });
    const random = seededRandom(this.#o.seed * 1_000_003 + index * 7919 + 1);
    const strategy: MembershipStrategy = this.#o.strategy === "hyparview"
      ? new HyParView(spec, { ...this.#o.hyparview, random })
      : new FullMesh(spec, {
        random,
        gossipIntervalMs: this.#o.gossipIntervalMs,
        deadMemberRemoveMs: this.#o.deadMemberRemoveMs,
      });
    const node: SimNode = {
      name,
      index,
      spec,
      alive: true,
      strategy,
      pt: new PlumtreeCore(name, { lazyTickMs: this.#o.lazyTickMs, ...this.#o.plumtree, random }),
      up: new Set(),
      wanted: new Map(),
      connecting: new Set(),
      inbound: new Set(),
      linkEpoch: new Map(),
      crash: undefined,
      ptDeadline: Infinity,
      lazyAt: Infinity,
      flushScheduled: false,
      effects: undefined as unknown as EffectsHost,
      handlers: undefined as unknown as PlumtreeHandlers,
    };
    node.effects = this.#effectsOf(node);
    node.handlers = this.#broadcasts.handlers(node);
    this.#nodes.push(node);
    this.#byName.set(name, node);
    this.#links.added(this.#nodes.length);
    const via = contact !== undefined ? this.#byName.get(contact) : this.#pick(this.#live);
    this.#live.push(node);
    if (via !== undefined) this.#apply(node, strategy.join(via.spec, this.#now));
    // Periodic work, each node at its own phase.
    this.#every(node, this.#o.pingIntervalMs, () => this.#tick(node));
    // The first lazy tick at a random part of the period, then each when due.
    this.#at(this.#random.next() * node.pt.lazyTickMs, () => this.#lazyTick(node));
    this.#pubs?.add(node);
    return name;
  }

  /**
   * Crashes nodes at once. A `"host"` crash (the default) is silence: peers
   * find their links to it silent after `failureTimeoutMs`, and a connect to it
   * times out after `connectTimeoutMs`. A `"process"` crash is what a killed
   * process on a live host looks like: its connections are reset, so each peer
   * with a link to it learns it one network latency later, and a connect is
   * refused after a round trip.
   */
  kill(names: readonly string[], kind: CrashKind = "host"): void {
    if (kind !== "host" && kind !== "process") {
      throw new TypeError(`kill: kind must be "host" or "process", got ${JSON.stringify(kind)}`);
    }
    for (const name of names) {
      const n = this.#byName.get(name);
      if (n === undefined || !n.alive) continue;
      n.alive = false;
      n.crash = kind;
      this.#live.splice(this.#live.indexOf(n), 1);
      for (const peer of n.inbound) {
        const p = this.#byName.get(peer)!;
        if (kind === "host") {
          // Every peer with a link to it finds it silent after the failure timeout.
          this.#at(this.#o.failureTimeoutMs, () => this.#links.linkDown(p, name, "silent"));
        } else this.#at(this.#links.latency(), () => this.#links.linkDown(p, name, "reset"));
      }
      if (kind === "process") {
        for (const peer of n.up) {
          const p = this.#byName.get(peer)!;
          this.#at(this.#links.latency(), () => p.inbound.delete(name));
        }
      }
    }
  }

  /**
   * Splits the cluster: `side` on one side, everyone else on the other.
   * Frames across are lost; links across are found silent after `failureTimeoutMs`.
   */
  partition(side: readonly string[]): void {
    const indices: number[] = [];
    for (const name of side) {
      const n = this.#byName.get(name);
      if (n !== undefined) indices.push(n.index);
    }
    this.#links.partition(this.#nodes.length, indices);
    for (const n of this.#nodes) {
      if (!n.alive) continue;
      for (const peer of n.up) {
        const p = this.#byName.get(peer)!;
        if (this.#links.cut(n, p)) {
          this.#at(this.#o.failureTimeoutMs, () => this.#links.linkDown(n, peer, "silent"));
        }
      }
    }
  }

  /** Heals the partition. */
  heal(): void {
    this.#links.heal();
    // Full mesh: nodes still wanting peers across retry on their backoff.
  }

  /** Broadcasts a new message from `from`; returns its id. */
  broadcast(from: string): number {
    const n = this.#byName.get(from);
    if (n === undefined || !n.alive) throw new Error(`${from} is not a live node`);
    const id = this.#broadcasts.open(n, this.#now);
    this.#sendPt(n, n.pt.broadcast(SIM_HANDLER, id, id, this.#now));
    return id;
  }

  /** The outcome of broadcast `id` so far. */
  report(id: number): BroadcastReport {
    return this.#broadcasts.report(id);
  }

  /**
   * The fraction of the nodes expected to get broadcast `id` (alive when it
   * was sent and now, its origin excluded) that got it within `ms` of its
   * sending (1 when none is expected).
   */
  reachedWithin(id: number, ms: number): number {
    return this.#broadcasts.reachedWithin(id, ms);
  }

  /**
   * Plumtree neighbours without a working link, over every live node: a
   * neighbour is stale when this node has no link up to it, or the link's
   * other end is dead or does not count it (frames on it would be lost). A
   * link whose close is on its way over the network (sent by the other end,
   * not arrived yet) is not counted: no node can know of it sooner.
   */
  staleNeighbours(): number {
    return staleNeighbours(this.#live, this.#byName, this.#links.closing);
  }

  /** The shape of the overlay now: its components over live nodes (links taken both ways). */
  overlay(): OverlayShape {
    const size = this.#o.strategy === "hyparview"
      ? (this.#nodes[0]?.strategy as HyParView | undefined)?.options.activeViewSize ?? 0
      : 0;
    return overlayShape(this.#live, this.#nodes.length, this.#byName, size);
  }

  /** Names of the nodes that were alive when broadcast `id` was sent, are alive now, and lack it. */
  missedBy(id: number): string[] {
    return this.#broadcasts.missedBy(id);
  }

  /** Runs until virtual time `t` (or until no event is left). */
  runUntil(t: number): void {
    for (let i = 0; i < 1e10; i++) {
      const at = this.#q.peek();
      if (at > t) break;
      const run = this.#q.pop()!;
      this.#now = at;
      this.counters.events++;
      run();
    }
    this.#now = Math.max(this.#now, t);
  }

  /** Runs for `ms` of virtual time. */
  runFor(ms: number): void {
    this.runUntil(this.#now + ms);
  }

  // ---------------------------------------------------------------- internals

  #pick<T>(items: readonly T[]): T | undefined {
    return items.length === 0 ? undefined : items[Math.floor(this.#random.next() * items.length)];
  }

  #at(delay: number, fn: () => void): void {
    this.#q.push(this.#now + delay, fn);
  }

  #every(n: SimNode, period: number, fn: () => void): void {
    const loop = () => {
      if (!n.alive) return;
      fn();
      this.#at(period, loop);
    };
    this.#at(this.#random.next() * period, loop);
  }

  #tick(n: SimNode): void {
    this.#apply(n, n.strategy.tick(this.#now));
  }

  /** Carries out a strategy's effects with the interpreter a Node uses. */
  #apply(n: SimNode, fx: StrategyEffects): void {
    if (!n.alive) return;
    applyEffects(fx, n.effects);
  }

  /** The simulated node's side of the effects: links instead of connections. */
  #effectsOf(n: SimNode): EffectsHost {
    return {
      canConnect: () => n.strategy.active,
      log: () => {},
      disconnect: (d) => {
        // Graceful: after what is sent to it now (frames stay in order on the link).
        if (d.graceful) this.#at(0, () => this.#links.drop(n, d.name));
        else this.#links.drop(n, d.name);
      },
      connect: (spec) => this.#links.ensure(n, spec),
      changes: () => {},
      send: (to, msg) => this.#links.send(n, to, msg, 0),
      refute: (above) => {
        n.spec = validateSpec({
          ...n.spec,
          incarnation: Math.max(n.spec.incarnation + 1, above + 1),
        });
        this.#apply(n, n.strategy.setSelf(n.spec, this.#now));
      },
      scheduleFlush: () => {
        if (n.flushScheduled) return;
        n.flushScheduled = true;
        this.#at(0, () => {
          n.flushScheduled = false;
          this.#apply(n, n.strategy.flush(this.#now));
        });
      },
    };
  }

  #onUp(n: SimNode, to: string): void {
    this.#apply(n, n.strategy.up(to, this.#now));
    if (!n.up.has(to)) return; // the strategy closed it again
    const hello = n.strategy.greeting(to);
    if (hello !== undefined) this.#links.send(n, to, hello, 0);
    this.#sendPt(n, n.pt.setMembers([n.name, ...n.up], this.#now));
    this.#pubs?.up(n, to);
  }

  #onDown(n: SimNode, to: string): void {
    this.#apply(n, n.strategy.down(to, this.#now));
    this.#sendPt(n, n.pt.setMembers([n.name, ...n.up], this.#now));
    this.#pubs?.down(n, to);
  }

  #sendPt(n: SimNode, sends: Send[]): void {
    for (const s of sends) {
      const m = s.msg;
      if (m[0] === PT.Broadcast && n.up.has(s.to)) this.#broadcasts.sent(m[2] as number);
      this.#links.send(n, s.to, m, 1);
    }
    this.#armPt(n);
    this.#armLazy(n);
  }

  #lazyTick(n: SimNode): void {
    if (!n.alive) return;
    n.lazyAt = -1;
    this.#sendPt(n, n.pt.lazyTickDue(this.#now));
    n.lazyAt = Infinity;
    this.#armLazy(n);
  }

  /** Schedules `n`'s next lazy tick when the core wants it sooner than scheduled. */
  #armLazy(n: SimNode): void {
    if (n.lazyAt === -1) return; // in the tick: armed when it ends
    const at = Math.max(this.#now, n.pt.nextLazyTickAt());
    if (at >= n.lazyAt) return;
    n.lazyAt = at;
    this.#q.push(at, () => {
      if (n.lazyAt === at) this.#lazyTick(n);
    });
  }

  #armPt(n: SimNode): void {
    const d = n.pt.nextDeadline();
    if (d === undefined || d >= n.ptDeadline) return;
    n.ptDeadline = d;
    this.#q.push(Math.max(d, this.#now), () => {
      if (n.ptDeadline !== d || !n.alive) return;
      n.ptDeadline = Infinity;
      this.#sendPt(n, n.pt.timers(this.#now));
    });
  }

  #size(msg: unknown): number {
    if (typeof msg !== "object" || msg === null) return encodeValue(msg).length;
    let size = this.#sizes.get(msg);
    if (size === undefined) this.#sizes.set(msg, size = encodeValue(msg).length);
    return size;
  }

  /** A Plumtree frame arrives: the dispatch a Plumtree server uses, with this node's handler. */
  #receivePt(n: SimNode, from: string, m: PlumtreeMessage): void {
    const r = receivePlumtree(n.pt, from, m, n.handlers, this.#clock);
    if (r instanceof Promise) throw new Error("the simulator's handlers answer synchronously");
    if (r.payload?.isNew) {
      const [, , id, , , round] = r.payload.msg;
      this.#broadcasts.delivered(n, id as number, round, this.#now);
    }
    this.#sendPt(n, r.sends);
  }
}
