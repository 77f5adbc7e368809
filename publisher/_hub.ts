// A node's publisher hub under a partial view: one per node while any of its
// publishers runs, shared by every scope. It runs the publishers' own
// Plumtree server (its own endpoint and trees, one handler for every scope),
// the anti-entropy endpoint, each scope's timers, and tells each core when
// neighbours come and go. Module-private (`DataPublisher` starts it).

import { type Clock, mathRandom, type TimerId } from "../base/clock.ts";
import type { Logger } from "../base/logger.ts";
import type { BroadcastHandler } from "../broadcast/handler.ts";
import { Plumtree } from "../broadcast/plumtree.ts";
import type { Node } from "../membership/node.ts";
import { relayOf } from "../membership/relay.ts";
import type { ProbeAnswer, PublisherCore, PublisherEffects } from "./core.ts";
import { ClosedError, UnknownNodeError } from "../membership/errors.ts";
import { isPushId, type PushId, type PushPayload } from "./overlay_wire.ts";

/** The endpoint of the publishers' Plumtree server. */
export const PUBLISHER_PLUMTREE_ENDPOINT = "murmur.pub.plumtree";
/** The endpoint of anti-entropy between neighbours. */
export const PUBLISHER_SYNC_ENDPOINT = "murmur.pub.sync";
/** The endpoint that answers a liveness probe: this node's epoch and life in a scope. */
export const PUBLISHER_PROBE_ENDPOINT = "murmur.pub.probe";
/** How long a probe waits for its answer. */
const PROBE_TIMEOUT_MS = 3000;
const HANDLER = "murmur.pub";
/** Pushes of scopes this node does not run, kept to pass on and to answer grafts. */
const FOREIGN_MAX = 1024;

// deno-lint-ignore no-explicit-any
type AnyCore = PublisherCore<any, any, any, any, any>;

/** A scope in the hub. */
export interface HubScope {
  /** Carries out a core's effects (and arms its removal timer). */
  run(fx: PublisherEffects): void;
  /**
   * Says goodbye (broadcast, and acknowledged sends to the neighbours, awaited
   * at most `timeoutMs`) and leaves the hub.
   */
  close(timeoutMs: number): Promise<void>;
}

interface Member {
  core: AnyCore;
  clock: Clock;
  log: Logger;
  syncIntervalMs: number;
  tick: TimerId | undefined;
  deadline: { id: TimerId; at: number } | undefined;
}

const hubs = new WeakMap<Node, Promise<PublisherHub>>();
/** The last epoch taken per node and scope: a publisher started again takes a greater one. */
const epochs = new WeakMap<Node, Map<string, number>>();

/** The hub of `node`, started with the first scope. */
export function hubOf(node: Node, clock: Clock, log: Logger): Promise<PublisherHub> {
  let h = hubs.get(node);
  if (h === undefined) {
    h = PublisherHub.start(node, clock, log);
    hubs.set(node, h);
    h.catch(() => hubs.delete(node));
  }
  return h;
}

/** An epoch for a new publisher of `scope` on `node`: above every earlier one. */
export function nextEpoch(node: Node, scope: string, clock: Clock): number {
  let m = epochs.get(node);
  if (m === undefined) epochs.set(node, m = new Map());
  const e = Math.max(Math.floor(clock.wallNow()), (m.get(scope) ?? 0) + 1);
  m.set(scope, e);
  return e;
}

/** The publishers' side of one node. */
export class PublisherHub {
  readonly #node: Node;
  readonly #clock: Clock;
  readonly #log: Logger;
  readonly #scopes = new Map<string, Member>();
  readonly #foreign = new Map<string, PushPayload>();
  readonly #offs: (() => void)[] = [];
  #plumtree!: Plumtree;

  private constructor(node: Node, clock: Clock, log: Logger) {
    this.#node = node;
    this.#clock = clock;
    this.#log = log;
  }

  static async start(node: Node, clock: Clock, log: Logger): Promise<PublisherHub> {
    const hub = new PublisherHub(node, clock, log);
    hub.#plumtree = await Plumtree.start(node, {
      handlers: [hub.#handler()],
      endpoint: PUBLISHER_PLUMTREE_ENDPOINT,
      clock,
      logger: log,
    });
    hub.#offs.push(
      node.register(PUBLISHER_SYNC_ENDPOINT, (msg, ctx) => hub.#sync(ctx.from, msg)),
      node.register(PUBLISHER_PROBE_ENDPOINT, (scope) => {
        const m = typeof scope === "string" ? hub.#scopes.get(scope) : undefined;
        if (m === undefined) return null;
        const { epoch, life } = m.core.self;
        return { epoch, life };
      }),
      node.onUp("*", (peer) => {
        for (const m of hub.#scopes.values()) hub.#run(m, m.core.neighbourUp(peer, m.clock.now()));
      }),
      node.onDown("*", (peer) => {
        const failed = hub.#failed(peer);
        for (const m of hub.#scopes.values()) {
          hub.#run(m, m.core.neighbourDown(peer, failed, m.clock.now()));
        }
      }),
      relayOf(node).beforeLeave(() => hub.#leaving()),
    );
    return hub;
  }

  /** Adds a scope's core; its neighbours are the node's connected members. */
  add(core: AnyCore, clock: Clock, log: Logger, syncIntervalMs: number): HubScope {
    if (this.#scopes.has(core.scope)) {
      throw new TypeError(`a publisher of scope "${core.scope}" already runs on this node`);
    }
    const m: Member = { core, clock, log, syncIntervalMs, tick: undefined, deadline: undefined };
    this.#scopes.set(core.scope, m);
    // The first round at a random phase: the nodes' rounds do not line up.
    const round = (ms: number) => {
      m.tick = clock.setTimeout(() => {
        round(syncIntervalMs);
        this.#run(m, core.tick(clock.now()));
      }, ms);
    };
    round(mathRandom.next() * syncIntervalMs);
    for (const peer of this.#node.connectedMembers()) {
      if (peer !== this.#node.name) this.#run(m, core.neighbourUp(peer, clock.now()));
    }
    return {
      run: (fx) => this.#run(m, fx),
      close: (timeoutMs) => this.#remove(m, timeoutMs),
    };
  }

  /** A neighbour that went down failed, unless it moved to the passive view or this node left. */
  #failed(peer: string): boolean {
    const members = this.#node.members();
    return members.length > 0 && !members.includes(peer) &&
      !this.#node.passiveMembers().includes(peer);
  }

  #run(m: Member, fx: PublisherEffects): void {
    for (const b of fx.broadcasts) {
      this.#plumtree.broadcast(b, HANDLER).catch((e) =>
        m.log({ level: "debug", node: this.#node.name, msg: "publisher push not sent", error: e })
      );
    }
    for (const p of fx.probes) this.#probe(m, p.origin, p.epoch, p.life);
    for (const s of fx.sends) {
      this.#node.send(s.to, PUBLISHER_SYNC_ENDPOINT, s.msg).catch((e) =>
        m.log({ level: "debug", node: this.#node.name, peer: s.to, msg: "sync not sent", error: e })
      );
    }
    this.#arm(m);
  }

  /** Asks `origin` over a connection of its own (a direct connection) whether it still runs the scope. */
  #probe(m: Member, origin: string, epoch: number, life: number): void {
    const answered = (answer: ProbeAnswer) => {
      if (this.#scopes.get(m.core.scope) === m) {
        this.#run(m, m.core.probed(origin, epoch, life, answer, m.clock.now()));
      }
    };
    this.#node.call(origin, PUBLISHER_PROBE_ENDPOINT, m.core.scope, { timeoutMs: PROBE_TIMEOUT_MS })
      .then(
        (a) => answered(isProbeAnswer(a) ? a : "unknown"),
        (e) =>
          answered(
            e instanceof UnknownNodeError || e instanceof ClosedError ? "unknown" : "unreachable",
          ),
      );
  }

  /** The removal timer at the core's next deadline. */
  #arm(m: Member): void {
    const at = m.core.nextDeadline();
    if (at === undefined || (m.deadline !== undefined && m.deadline.at <= at)) return;
    if (m.deadline !== undefined) m.clock.clearTimeout(m.deadline.id);
    const id = m.clock.setTimeout(() => {
      m.deadline = undefined;
      this.#run(m, m.core.timers(m.clock.now()));
    }, Math.max(0, at - m.clock.now()));
    m.deadline = { id, at };
  }

  #sync(from: string, msg: unknown): void {
    const scope = Array.isArray(msg) ? msg[1] : undefined;
    const m = typeof scope === "string" ? this.#scopes.get(scope) : undefined;
    if (m !== undefined) this.#run(m, m.core.receive(from, msg, m.clock.now()));
  }

  /** Goodbyes, acknowledged by the neighbours, then each scope takes a new epoch. */
  async #leaving(): Promise<void> {
    await Promise.all([...this.#scopes.values()].map((m) => this.#bye(m, 2000)));
    for (const m of this.#scopes.values()) {
      m.core.renew(nextEpoch(this.#node, m.core.scope, m.clock));
    }
  }

  async #bye(m: Member, timeoutMs: number): Promise<void> {
    const fx = m.core.bye();
    for (const b of fx.broadcasts) await this.#plumtree.broadcast(b, HANDLER).catch(() => {});
    await Promise.allSettled(
      fx.sends.map((s) =>
        this.#node.send(s.to, PUBLISHER_SYNC_ENDPOINT, s.msg, { ack: true, timeoutMs })
      ),
    );
  }

  async #remove(m: Member, timeoutMs: number): Promise<void> {
    if (this.#scopes.get(m.core.scope) !== m) return;
    await this.#bye(m, timeoutMs);
    this.#scopes.delete(m.core.scope);
    if (m.tick !== undefined) m.clock.clearTimeout(m.tick);
    if (m.deadline !== undefined) m.clock.clearTimeout(m.deadline.id);
    if (this.#scopes.size > 0) return;
    // The last scope: the hub stops.
    hubs.delete(this.#node);
    for (const off of this.#offs) off();
    await this.#plumtree.close();
  }

  // deno-lint-ignore no-explicit-any
  #handler(): BroadcastHandler<{ id: PushId; payload: PushPayload }, any, any> {
    const key = (id: PushId) => JSON.stringify(id);
    const scopeOf = (id: unknown) => isPushId(id) ? this.#scopes.get(id[0]) : undefined;
    return {
      name: HANDLER,
      broadcastData: (msg) => msg,
      merge: (id, payload) => {
        const m = scopeOf(id);
        if (m !== undefined) {
          const r = m.core.receivePush(id, payload, m.clock.now());
          this.#run(m, r.effects);
          return r.isNew;
        }
        // A scope this node does not run: passed on all the same (others beyond may).
        if (!isPushId(id) || this.#foreign.has(key(id))) return false;
        this.#foreign.set(key(id), payload);
        if (this.#foreign.size > FOREIGN_MAX) {
          this.#foreign.delete(this.#foreign.keys().next().value!);
        }
        return true;
      },
      isStale: (id) =>
        scopeOf(id)?.core.isStale(id) ?? (!isPushId(id) || this.#foreign.has(key(id))),
      graft: (id) => {
        const m = scopeOf(id);
        if (m !== undefined) return m.core.graft(id);
        const p = isPushId(id) ? this.#foreign.get(key(id)) : undefined;
        return p !== undefined ? { ok: p } : { error: "not held" };
      },
      exchange: () => "ignore",
    };
  }
}

function isProbeAnswer(v: unknown): v is { epoch: number; life: number } | null {
  if (v === null) return true;
  const a = v as { epoch?: unknown; life?: unknown };
  return typeof v === "object" && typeof a.epoch === "number" && Number.isSafeInteger(a.life);
}
