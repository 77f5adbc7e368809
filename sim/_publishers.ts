// The simulator's data publishers: on every simulated node, the real
// publisher core of one scope and a Plumtree core of its own (as a node's
// publisher hub runs them), carried over the simulated links. The module is
// a light presence: each node tracks keys; the view counts them. Module-private
// (the `Simulation` drives it).

import { type Random, seededRandom } from "../base/clock.ts";
import { type PlumtreeHandlers, receivePlumtree } from "../broadcast/dispatch.ts";
import { PlumtreeCore } from "../broadcast/plumtree_core.ts";
import type { PlumtreeMessage, Send } from "../broadcast/wire.ts";
import type { MembershipStrategy } from "../membership/strategy.ts";
import {
  type ProbeAnswer,
  PublisherCore,
  type PublisherCoreOptions,
  type PublisherEffects,
} from "../publisher/core.ts";
import type { PublisherModule } from "../publisher/module.ts";

/** Publisher settings of a simulation. */
export type SimPublisherOptions =
  & Omit<
    PublisherCoreOptions,
    "name" | "epoch" | "random" | "moduleOptions" | "logger" | "frameBytesMax"
  >
  & {
    /**
     * Period of each node's anti-entropy round.
     *
     * @default 2000
     */
    syncIntervalMs?: number;
  };

/** A node's tracked keys. */
export type SimKeys = readonly string[];
/** Keys tracked and untracked. */
export interface SimKeysUpdate {
  /** Keys tracked. */
  add: string[];
  /** Keys untracked. */
  remove: string[];
}

/**
 * Presence reduced to what the simulator measures: each node's keys, the view
 * their count. Pure (a node's data is never changed in place: the simulator
 * shares message objects between nodes).
 */
export const simKeysModule: PublisherModule<
  SimKeys,
  SimKeysUpdate,
  { count: number },
  string,
  number
> = {
  version: () => 1,
  initLocalData: () => [],
  initGlobalView: () => ({ count: 0 }),
  dataDiff: (o, n) => ({
    add: n.filter((k) => !o.includes(k)),
    remove: o.filter((k) => !n.includes(k)),
  }),
  updateLocalData: (
    u,
    d,
  ) => [...d.filter((k) => !u.remove.includes(k)), ...u.add.filter((k) => !d.includes(k))],
  updateGlobalViewAndNotify: (_node, u, _subs, view) => {
    view.count += u.add.length - u.remove.length;
    return view;
  },
  newSubscription: (_s, view) => view.count,
  stopGlobalView: () => {},
  translateLocalData: (_m, _p, d) => d,
  translateUpdate: (_m, _p, u) => u,
};

/** The simulator's publisher core type. */
export type SimCore = PublisherCore<SimKeys, SimKeysUpdate, { count: number }, string, number>;

/** A simulated node as the publisher layer sees it. */
export interface PubNode {
  readonly name: string;
  readonly index: number;
  readonly alive: boolean;
  readonly up: ReadonlySet<string>;
  readonly strategy: MembershipStrategy;
}

/** What the simulation gives the publisher layer. */
export interface PubHost {
  now(): number;
  /** Runs `fn` after `delay` ms. */
  at(delay: number, fn: () => void): void;
  /** Runs `fn` every `period` ms while `n` is alive, from a random phase. */
  every(n: PubNode, period: number, fn: () => void): void;
  /** Sends on `n`'s link to `to`: kind 2, publisher Plumtree; kind 3, anti-entropy. */
  send(n: PubNode, to: string, msg: unknown, kind: 2 | 3): void;
  /** The node named `name`, if any. */
  node(name: string): PubNode | undefined;
  /** Whether a partition cuts `a` from `b`. */
  cut(a: PubNode, b: PubNode): boolean;
  latency(): number;
  readonly connectTimeoutMs: number;
  readonly lazyTickMs: number;
}

interface PubState {
  readonly core: SimCore;
  readonly pt: PlumtreeCore;
  readonly handlers: PlumtreeHandlers;
  ptDeadline: number;
  coreDeadline: number;
}

const HANDLER = "murmur.pub";

/** The publishers of every simulated node. */
export class SimPublishers {
  readonly #host: PubHost;
  readonly #o: SimPublisherOptions;
  readonly #seed: number;
  readonly #states: (PubState | undefined)[] = [];

  constructor(host: PubHost, options: SimPublisherOptions, seed: number) {
    this.#host = host;
    this.#o = options;
    this.#seed = seed;
  }

  /** A new node's publisher (epoch 1: a simulated node never restarts). */
  add(n: PubNode): void {
    const random: Random = seededRandom(this.#seed * 7_000_003 + n.index * 104_729 + 5);
    const { syncIntervalMs, ...coreOptions } = this.#o;
    const core: SimCore = new PublisherCore("sim", simKeysModule, {
      ...coreOptions,
      name: n.name,
      epoch: 1,
      random,
    });
    const s: PubState = {
      core,
      pt: new PlumtreeCore(n.name, { random }),
      handlers: undefined as unknown as PlumtreeHandlers,
      ptDeadline: Infinity,
      coreDeadline: Infinity,
    };
    (s as { handlers: PlumtreeHandlers }).handlers = {
      has: (h) => h === HANDLER,
      merge: (_h, id, payload) => {
        const r = core.receivePush(id, payload, this.#host.now());
        this.#run(n, s, r.effects);
        return r.isNew;
      },
      isStale: (_h, id) => core.isStale(id),
      graft: (_h, id) => core.graft(id),
    };
    this.#states[n.index] = s;
    this.#host.every(n, syncIntervalMs ?? 2000, () => {
      // A link only the peer opened carries its frames here; when it closes
      // nothing is reported on this side (a node would see its connection
      // close): its Plumtree members are refreshed each round instead.
      this.#sendPt(n, s, s.pt.setMembers([n.name, ...n.up], this.#host.now()));
      this.#run(n, s, core.tick(this.#host.now()));
    });
    this.#host.every(
      n,
      this.#host.lazyTickMs,
      () => this.#sendPt(n, s, s.pt.lazyTick(this.#host.now())),
    );
  }

  /**
   * Convergence: the live nodes whose view differs from the truth (every live
   * node's data, at its last sequence), and the entries of dead nodes those views show.
   */
  state(
    live: readonly PubNode[],
    alive: (name: string) => boolean,
  ): { differing: number; stale: number } {
    let truth = 0;
    for (const n of live) truth ^= this.core(n.index)!.selfViewHash;
    let differing = 0, stale = 0;
    for (const n of live) {
      const c = this.core(n.index)!;
      if (c.viewHash !== (truth >>> 0)) {
        differing++;
        for (const o of c.shown()) if (!alive(o.node)) stale++;
      }
    }
    return { differing, stale };
  }

  /** The core of node `index`. */
  core(index: number): SimCore | undefined {
    return this.#states[index]?.core;
  }

  /** `n` tracks and untracks keys. */
  update(n: PubNode, update: SimKeysUpdate): void {
    const s = this.#states[n.index]!;
    this.#run(n, s, s.core.update(update, this.#host.now()));
  }

  /** A link of `n` came up. */
  up(n: PubNode, to: string): void {
    const s = this.#states[n.index];
    if (s === undefined) return;
    this.#sendPt(n, s, s.pt.setMembers([n.name, ...n.up], this.#host.now()));
    this.#run(n, s, s.core.neighbourUp(to, this.#host.now()));
  }

  /**
   * A link of `n` went down: a failure unless the strategy keeps `to` as a
   * passive member (the rule of a node's publisher hub).
   */
  down(n: PubNode, to: string): void {
    const s = this.#states[n.index];
    if (s === undefined) return;
    this.#sendPt(n, s, s.pt.setMembers([n.name, ...n.up], this.#host.now()));
    const failed = !n.strategy.members().includes(to) && !(n.strategy.passive?.(to) ?? false);
    this.#run(n, s, s.core.neighbourDown(to, failed, this.#host.now()));
  }

  /** A publisher frame arrives at `n`. */
  receive(n: PubNode, from: string, msg: unknown, kind: 2 | 3): void {
    const s = this.#states[n.index];
    if (s === undefined) return;
    if (kind === 3) return this.#run(n, s, s.core.receive(from, msg, this.#host.now()));
    const r = receivePlumtree(
      s.pt,
      from,
      msg as PlumtreeMessage,
      s.handlers,
      () => this.#host.now(),
    );
    if (r instanceof Promise) throw new Error("the simulator's handlers answer synchronously");
    this.#sendPt(n, s, r.sends);
  }

  #run(n: PubNode, s: PubState, fx: PublisherEffects): void {
    const now = this.#host.now();
    for (const b of fx.broadcasts) {
      this.#sendPt(n, s, s.pt.broadcast(HANDLER, b.id, b.payload, now));
    }
    for (const m of fx.sends) this.#host.send(n, m.to, m.msg, 3);
    for (const p of fx.probes) this.#probe(n, s, p.origin, p.epoch, p.life);
    const at = s.core.nextDeadline();
    if (at !== undefined && at < s.coreDeadline) {
      s.coreDeadline = at;
      this.#host.at(Math.max(0, at - now), () => {
        if (s.coreDeadline !== at || !n.alive) return;
        s.coreDeadline = Infinity;
        this.#run(n, s, s.core.timers(this.#host.now()));
      });
    }
  }

  /**
   * A probe over a connection of its own: a live node answers after a round
   * trip, a dead one refuses after one, a partitioned one is never heard from;
   * a node whose address the strategy does not know cannot be asked.
   */
  #probe(n: PubNode, s: PubState, origin: string, epoch: number, life: number): void {
    const t = this.#host.node(origin);
    let answer: () => ProbeAnswer;
    let delay = 2 * this.#host.latency();
    if (t === undefined || n.strategy.entry(origin) === undefined) answer = () => "unknown";
    else if (this.#host.cut(n, t)) {
      delay = this.#host.connectTimeoutMs;
      answer = () => "unreachable";
    } else {
      answer = () => {
        if (!t.alive) return "unreachable";
        const c = this.#states[t.index]!.core;
        return { epoch: c.self.epoch, life: c.self.life };
      };
    }
    this.#host.at(delay, () => {
      if (n.alive) this.#run(n, s, s.core.probed(origin, epoch, life, answer(), this.#host.now()));
    });
  }

  #sendPt(n: PubNode, s: PubState, sends: Send[]): void {
    for (const x of sends) this.#host.send(n, x.to, x.msg, 2);
    const d = s.pt.nextDeadline();
    if (d === undefined || d >= s.ptDeadline) return;
    s.ptDeadline = d;
    this.#host.at(Math.max(0, d - this.#host.now()), () => {
      if (s.ptDeadline !== d || !n.alive) return;
      s.ptDeadline = Infinity;
      this.#sendPt(n, s, s.pt.timers(this.#host.now()));
    });
  }
}
