// The machinery of a Node: its parts (connections, delivery, strategy,
// listeners, partitions, direct links), how they are wired together, and what
// happens on each event (a peer up or down, a message, a failed connect, the
// periodic tick). The Node class is the documented face of it.
// Module-private.

import { DEFAULT_DIRECT_IDLE_MS } from "./defaults.ts";
import { type Clock, randomBytes, type TimerId } from "../base/clock.ts";
import { encodeValue } from "../base/codec.ts";
import { Tag, type WireMessage } from "./wire.ts";
import {
  ClosedError,
  type HandshakeCode,
  HandshakeError,
  NodeDownError,
  UnknownNodeError,
} from "./errors.ts";
import type { HandshakeConfig } from "./handshake.ts";
import type { Link } from "./_link.ts";
import { DEFAULT_CHANNEL, logAs, type NodeConfig } from "./_config.ts";
import { timeoutOption } from "../base/options.ts";
import { Delivery } from "./_delivery.ts";
import { fanOut } from "./_fanout.ts";
import type { Relay } from "./relay.ts";
import { admit } from "./_admission.ts";
import { DirectLinks } from "./_direct.ts";
import { ChangeListeners, NamedListeners, UpWaiters } from "./_listeners.ts";
import { Partitions } from "./_partitions.ts";
import { FATAL_CODES, type Peer, Peers } from "./_peers.ts";
import { checkLiveness } from "./_liveness.ts";
import { NodeSwim, swimStats } from "./_swim_host.ts";
import { FullMesh } from "./full_mesh.ts";
import type { LogLevel } from "../base/logger.ts";
import { checkTags, isName, type NodeSpec, type Tags } from "./spec.ts";
import type { Handler } from "./messaging.ts";
import type { NodeOptions } from "./options.ts";
import {
  applyEffects,
  type EffectsHost,
  type MembershipStrategy,
  type StrategyEffects,
} from "./strategy.ts";
import { HyParView } from "./hyparview.ts";
import {
  type Address,
  formatAddress,
  type FrameListener,
  parseAddress,
  type Transport,
} from "./transport.ts";

export { DEFAULT_CHANNEL } from "./_config.ts";
import type { CallObserver, JoinResult, MemberInfo, MemberState, NodeStats } from "./node_types.ts";

/** The machinery of one node (see the Node class for what each part means). */
const NO_TAGS: Tags = Object.freeze({});
/** How long a leaving node keeps its links for the peers to read its notice and close them. */
const LEAVE_LINGER_MS = 250;

export class NodeCore {
  readonly cfg: NodeConfig;
  readonly clock: Clock;
  readonly instance: Uint8Array;
  readonly peers: Peers;
  readonly delivery: Delivery;

  readonly strategy: MembershipStrategy;
  spec: NodeSpec;
  closed = false;
  refutations = 0;
  /** Observers of finished calls (metrics); empty costs one size check per call. */
  readonly callObservers = new Set<CallObserver>();
  readonly upListeners: NamedListeners;
  readonly downListeners: NamedListeners;
  /** What runs before this node leaves (publishers say goodbye). */
  readonly leaveHooks = new Set<() => Promise<void>>();
  readonly changeListeners: ChangeListeners;
  readonly partitions: Partitions;
  readonly joinWaiters: UpWaiters;
  tickTimer: TimerId | undefined;
  retransmitTimer: TimerId | undefined;
  probeTimer: TimerId | undefined;
  flushTimer: TimerId | undefined;
  readonly tasks = new Set<Promise<unknown>>();
  readonly direct: DirectLinks;
  /** SWIM-style liveness (the full mesh); HyParView pings its few links instead. */
  readonly swim: NodeSwim | undefined;

  constructor(
    cfg: NodeConfig,
    listener: FrameListener,
    transport: Transport,
    options: NodeOptions,
  ) {
    this.cfg = cfg;
    this.clock = cfg.clock;
    this.instance = randomBytes(cfg.random, 16);
    const incarnation = options.incarnation ?? Math.floor(this.clock.wallNow());
    if (!Number.isSafeInteger(incarnation) || incarnation < 0) {
      throw new RangeError(`incarnation must be a non-negative integer, got ${incarnation}`);
    }
    const bound = listener.addr;
    this.spec = {
      name: cfg.name,
      incarnation,
      listenAddrs: (options.advertise ?? [bound]).map((a) => ({
        hostname: a.hostname,
        port: a.port === 0 ? bound.port : a.port,
      })),
      channels: Object.fromEntries(
        [...cfg.channels.values()].map((c) => [c.name, {
          parallelism: c.parallelism,
          monotonic: c.monotonic,
        }]),
      ),
      ...(options.tags === undefined ? {} : { tags: checkTags(options.tags), tagsVersion: 0 }),
    };
    const m = options.membership;
    const threw = (name: string, e: unknown) =>
      this.log("error", "up/down callback threw", name, e);
    this.upListeners = new NamedListeners(threw);
    this.downListeners = new NamedListeners(threw);
    this.joinWaiters = new UpWaiters(this.clock);
    this.changeListeners = new ChangeListeners((level, msg, peer, error) =>
      this.log(level, msg, peer, error)
    );
    this.partitions = new Partitions(cfg.name, this.clock, {
      log: (msg) => this.log("info", msg),
      healed: (name) => {
        const p = this.peers.peers.get(name);
        if (p !== undefined && !p.up) this.peers.retryNow(p);
      },
    });
    this.strategy = m?.strategy === "hyparview"
      ? new HyParView(this.spec, { ...m, random: cfg.random })
      : new FullMesh(this.spec, {
        random: cfg.random,
        membersMax: cfg.membersMax,
        tombstonesMax: cfg.tombstonesMax,
        deadMemberRemoveMs: cfg.deadMemberRemoveMs,
        tombstoneTtlMs: cfg.tombstoneTtlMs,
        gossipIntervalMs: cfg.gossipIntervalMs,
        gossipFanout: cfg.gossipFanout,
      });
    this.peers = new Peers(cfg, transport, listener, {
      admit: (a, instance) =>
        admit(
          {
            self: this.spec,
            strategy: this.strategy,
            peers: this.peers,
            failureTimeoutMs: cfg.failureTimeoutMs,
            membersMax: cfg.membersMax,
            now: this.clock.now(),
            isPartitioned: (name) => this.isPartitioned(name),
          },
          a,
          instance,
        ),
      accepted: (a) => this.run(this.strategy.seen(a.spec, this.clock.now())),
      up: (peer) => this.onUp(peer),
      down: (peer, why, error) => this.onDown(peer, why, error),
      message: (link, m, frame) => this.onMessage(link, m, frame),
      connectFailed: (peer, e, code) => this.onConnectFailed(peer, e, code),
      unreached: (peer, e) => this.delivery.unreached(peer.name, e),
      restarted: (spec) => this.run(this.strategy.seen(spec, this.clock.now())),
      handshakeConfig: () => this.handshakeConfig(),
      isPartitioned: (name) => this.isPartitioned(name),
      active: () => !this.closed && this.strategy.active,
    }, (p) => this.track(p));
    this.delivery = new Delivery(cfg, this.peers, {
      isPartitioned: (name) => this.isPartitioned(name),
      isOpen: () => !this.closed && this.strategy.active,
      isMember: (name) => this.strategy.entry(name)?.status === "alive",
      reach: (name) => this.direct.reach(name),
      neighbour: (name) => !this.direct.has(name),
      partial: () => this.strategy.kind !== "full-mesh",
      specOf: (name) => name === this.cfg.name ? this.spec : this.memberSpec(name),
      selfKey: () => `${this.cfg.name}@${this.spec.incarnation}`,
    });
    this.swim = this.strategy.kind !== "full-mesh"
      ? undefined
      : new NodeSwim(this.peers, this.delivery.endpoints, cfg, (name) => this.isPartitioned(name));
    this.direct = new DirectLinks(
      cfg.name,
      m?.strategy === "hyparview"
        ? timeoutOption("directIdleMs", m.directIdleMs, DEFAULT_DIRECT_IDLE_MS)
        : DEFAULT_DIRECT_IDLE_MS,
      this.peers,
      this.delivery,
      this.strategy,
      {
        open: () => !this.closed && this.strategy.active,
        isPartitioned: (name) => this.isPartitioned(name),
        debug: (msg, peer, error) => this.log("debug", msg, peer, error),
      },
    );
  }

  memberSpec(name: string): NodeSpec | undefined {
    const e = this.strategy.entry(name);
    return e === undefined || e.status !== "alive" ? undefined : e.spec;
  }

  connectedMembers(): string[] {
    if (!this.strategy.active) return [];
    const out = [this.cfg.name];
    for (const p of this.peers.peers.values()) {
      if (p.up && !this.direct.has(p.name)) out.push(p.name);
    }
    return out.sort();
  }

  memberInfo(): MemberInfo[] {
    const now = this.clock.now();
    const active = this.strategy.active;
    return this.strategy.entries().map(({ spec, status }): MemberInfo => {
      const self = spec.name === this.cfg.name;
      const peer = self || this.direct.has(spec.name) ? undefined : this.peers.peers.get(spec.name);
      const connections: Record<string, number> = {};
      if (peer?.up) { for (const [ch, links] of peer.slots) connections[ch] = links.length; }
      let state: MemberState;
      if (status !== "alive") state = status;
      else if (self) state = active ? "up" : "left";
      else if (peer?.up) state = "up";
      else state = this.strategy.passive?.(spec.name) ? "passive" : "down";
      const addr = spec.listenAddrs[0];
      return {
        name: spec.name,
        self,
        state,
        incarnation: spec.incarnation,
        tags: spec.tags ?? NO_TAGS,
        address: addr === undefined ? undefined : formatAddress(addr),
        connections,
        lastHeardMs: peer === undefined ? undefined : Math.max(0, Math.round(now - peer.lastHeard)),
      };
    });
  }

  stats(): NodeStats {
    const c = this.peers.connections();
    const pc = this.peers.counters, dc = this.delivery.counters, sc = this.strategy.stats;
    return {
      framesIn: pc.framesIn,
      framesOut: pc.framesOut,
      bytesIn: pc.bytesIn,
      bytesOut: pc.bytesOut,
      badConnections: pc.badConnections,
      partitionDrops: pc.partitionDrops,
      sendDrops: dc.sendDrops,
      ackFailures: dc.ackFailures,
      ...this.delivery.endpoints.causal.counters,
      forwarded: this.delivery.router.counters.forwarded,
      routeDrops: this.delivery.router.counters.routeDrops,
      invalidMessages: this.delivery.endpoints.invalidMessages,
      retransmits: this.delivery.acks.counters.retransmits,
      duplicates: this.delivery.acks.counters.duplicates,
      acksOutstanding: this.delivery.acks.outstanding,
      ackBytes: this.delivery.acks.bytes,
      callsOutstanding: this.delivery.calls.outstanding,
      gossipsOut: sc.gossipsOut,
      connections: c.count,
      directConnections: this.direct.size,
      queuedBytes: c.queuedBytes,
      handshakesRefused: pc.handshakesRefused,
      handshakesEvicted: pc.handshakesEvicted,
      handshakesTimedOut: pc.handshakesTimedOut,
      connectsRefused: pc.connectsRefused,
      invalidEntries: sc.invalidEntries,
      membersRejected: sc.membersRejected,
      membersRemoved: sc.membersRemoved,
      members: this.strategy.members().length,
      tombstones: this.strategy.tombstones(),
      refutations: this.refutations,
      ...swimStats(this.swim?.swim.stats),
    };
  }

  async join(target: NodeSpec | string, options: { timeoutMs?: number } = {}): Promise<JoinResult> {
    this.assertOpen();
    const timeoutMs = timeoutOption("timeoutMs", options.timeoutMs, this.cfg.connectTimeoutMs * 2);
    let addr: Address;
    let expect: string | undefined;
    if (typeof target === "string") {
      addr = parseAddress(target);
    } else {
      if (typeof target !== "object" || target === null || !isName(target.name)) {
        throw new TypeError('join target must be a node spec or a "host:port" string');
      }
      if (target.name === this.cfg.name) {
        throw new TypeError(`a node cannot join itself ("${target.name}")`);
      }
      const first = target.listenAddrs?.[0];
      if (first === undefined) {
        throw new TypeError(`spec of "${target.name}" has no listen address`);
      }
      addr = first;
      expect = target.name;
    }
    if (!this.strategy.active) this.rejoin();
    // Nothing enters the view before it authenticates: probe the target first.
    const stale: NodeSpec[] = [];
    let spec: NodeSpec | undefined;
    for (let attempt = 0; spec === undefined; attempt++) {
      try {
        spec = (await this.peers.probe(addr, expect)).spec;
      } catch (e) {
        if (e instanceof HandshakeError && e.code === "stale" && attempt < 3) {
          if (e.known !== undefined) stale.push(e.known);
          this.takeIncarnationAbove(e.known?.incarnation ?? this.spec.incarnation, e.message);
          continue;
        }
        throw e;
      }
    }
    if (spec.name === this.cfg.name) {
      throw new TypeError(`a node cannot join itself ("${spec.name}")`);
    }
    const result = (): JoinResult => ({
      node: spec.name,
      incarnation: this.spec.incarnation,
      stale,
    });
    if (this.peers.peers.get(spec.name)?.up) return result();
    const upped = this.joinWaiters.wait(spec.name, timeoutMs);
    this.run(this.strategy.join(spec, this.clock.now()));
    const peer = this.peers.peers.get(spec.name);
    if (peer !== undefined) this.peers.retryNow(peer);
    await upped;
    return result();
  }

  async leave(name?: string): Promise<void> {
    this.assertOpen();
    if (name !== undefined && name !== this.cfg.name) {
      if (!isName(name)) throw new TypeError(`invalid node name ${JSON.stringify(name)}`);
      if (this.strategy.entry(name)?.status !== "alive") throw new UnknownNodeError(name);
      if (this.peers.peers.get(name)?.up) {
        throw new TypeError(
          `"${name}" is up: a live member leaves by itself (leave() on that node)`,
        );
      }
      this.run(this.strategy.remove([name], this.clock.now()));
      return;
    }
    if (!this.strategy.active) return;
    if (this.leaveHooks.size > 0) {
      const hooks = [...this.leaveHooks].map((fn) =>
        fn().catch((e) => this.log("warn", "a leave hook failed", undefined, e))
      );
      await raceTimeout(Promise.all(hooks), this.clock, this.cfg.connectTimeoutMs);
    }
    const fx = this.strategy.leave(this.clock.now());
    const flushes: Promise<void>[] = [];
    const noticed: Link[] = [];
    // One notice for all (full mesh): it also goes to every node with a link open to this one
    // that the view does not list yet (a peer that joined this node a moment ago).
    const notice = fx.sends[0]?.msg;
    if (notice !== undefined && fx.sends.every((x) => x.msg === notice)) {
      const told = new Set(fx.sends.map((x) => x.to));
      for (const l of this.peers.incoming) {
        if (!told.has(l.peer)) {
          told.add(l.peer);
          fx.sends.push({ to: l.peer, msg: notice });
        }
      }
    }
    for (const s of fx.sends) {
      if (this.isPartitioned(s.to)) continue;
      // On every open link with it, this node's and the one it opened: closing them all
      // at once, the peer may see one close before it reads the other, and a link's notice
      // is read before its own close.
      const links = [this.peers.control(s.to), ...this.peers.incoming].filter((l) =>
        l !== undefined && l.peer === s.to && !l.closed && l.channel === DEFAULT_CHANNEL
      ) as Link[];
      const frame = this.frame(s.msg);
      for (const l of new Set(links)) {
        if (!l.enqueueControl(frame)) continue;
        flushes.push(l.flush());
        noticed.push(l);
      }
    }
    await raceTimeout(Promise.all(flushes), this.clock, this.cfg.connectTimeoutMs);
    // A peer that reads the notice closes its links to this node; until then (at most
    // LEAVE_LINGER_MS) this node keeps them, so that no close overtakes the notice.
    await raceTimeout(Promise.all(noticed.map((l) => l.whenClosed())), this.clock, LEAVE_LINGER_MS);
    this.run({ ...fx, sends: [] });
    const gone = new NodeDownError(this.cfg.name, "left the cluster");
    for (const p of [...this.peers.peers.values()]) this.peers.drop(p, "this node left", gone);
    for (const l of [...this.peers.incoming]) l.close(gone);
    this.peers.incoming.clear();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const t of [this.tickTimer, this.retransmitTimer, this.probeTimer, this.flushTimer]) {
      if (t !== undefined) this.clock.clearTimeout(t);
    }
    this.partitions.clear();
    this.swim?.close();
    const closed = new ClosedError(`node "${this.cfg.name}" is closed`);
    this.peers.close(closed);
    this.delivery.close(closed);
    this.upListeners.clear();
    this.downListeners.clear();
    this.changeListeners.clear();
    this.joinWaiters.failAll(closed);
    // Wait for every read, write and accept loop so that no I/O outlives close().
    while (this.tasks.size > 0) await Promise.allSettled([...this.tasks]);
  }

  track(p: Promise<unknown>): void {
    this.tasks.add(p);
    void p.finally(() => this.tasks.delete(p));
  }

  assertOpen(): void {
    if (this.closed) throw new ClosedError(`node "${this.cfg.name}" is closed`);
  }

  log(level: LogLevel, msg: string, peer?: string, error?: unknown): void {
    logAs(this.cfg, level, msg, peer, error);
  }

  isPartitioned(name: string): boolean {
    return this.partitions.has(name);
  }

  handshakeConfig(): HandshakeConfig {
    return {
      cluster: this.cfg.cluster,
      cookie: this.cfg.cookie,
      spec: this.spec,
      instance: this.instance,
      nonce: () => randomBytes(this.cfg.random, 16),
      handshakeFrameBytesMax: this.cfg.handshakeFrameBytesMax,
    };
  }

  /** A membership message frame; one encoding per message object in a batch. */
  frame(msg: unknown): Uint8Array {
    return encodeValue([Tag.Gossip, msg]);
  }

  /** Carries out what the strategy asked for (the interpreter the simulator shares). */
  run(fx: StrategyEffects): void {
    this.sent = undefined;
    applyEffects(fx, this.effects);
  }

  /** The last membership message encoded in this run of effects (sent to several peers at once). */
  sent: { msg: unknown; frame: Uint8Array } | undefined;

  /** How this node carries out a strategy's effects. */
  readonly effects: EffectsHost = {
    canConnect: () => !this.closed && this.strategy.active,
    log: (level, msg, peer) => this.log(level, msg, peer),
    disconnect: (d) => {
      if (this.direct.has(d.name)) {
        // This node's direct connection stays (it closes when idle); the node's own
        // connections to this one close, so that it sees the refusal.
        this.peers.closeIncoming(d.name, d.reason);
        return;
      }
      const peer = this.peers.peers.get(d.name);
      if (d.graceful && peer?.up) {
        // After what these effects send it (a DISCONNECT): flush, then close.
        this.track(this.dropAfterFlush(peer, d.reason));
      } else if (peer !== undefined) this.peers.drop(peer, d.reason);
      else this.peers.closeIncoming(d.name, d.reason);
      if (d.departed) {
        this.delivery.peerDeparted(d.name, d.reason);
        this.joinWaiters.fail(d.name, new NodeDownError(d.name, d.reason));
      }
    },
    connect: (spec) => {
      if (spec.name === this.cfg.name) return;
      const promoted = this.direct.promote(spec); // a direct connection becomes a neighbour
      if (promoted === undefined) this.peers.ensure(spec);
      else if (promoted.up) queueMicrotask(() => this.onUp(promoted));
    },
    changes: (changes) => {
      for (const c of changes) {
        // New tags at the same incarnation: the connections stay, the registry takes the spec.
        if (c.kind !== "updated") continue;
        const peer = this.peers.peers.get(c.name);
        if (peer !== undefined) (peer as { spec: NodeSpec }).spec = c.spec;
      }
      this.changeListeners.report(changes);
    },
    send: (to, msg) => {
      let sent = this.sent;
      if (sent === undefined || sent.msg !== msg) {
        this.sent = sent = { msg, frame: this.frame(msg) };
      }
      if (this.isPartitioned(to)) return;
      this.peers.control(to)?.enqueueControl(sent.frame);
    },
    refute: (above, reason) => this.takeIncarnationAbove(above, reason),
    scheduleFlush: () => {
      if (this.flushTimer !== undefined || this.closed) return;
      this.flushTimer = this.clock.setTimeout(() => {
        this.flushTimer = undefined;
        if (!this.closed) this.run(this.strategy.flush(this.clock.now()));
      }, 0);
    },
  };

  async dropAfterFlush(peer: Peer, reason: string): Promise<void> {
    const l = peer.slots.get(DEFAULT_CHANNEL)?.[0];
    if (l !== undefined) await raceTimeout(l.flush(), this.clock, this.cfg.connectTimeoutMs);
    if (this.peers.peers.get(peer.name) === peer) this.peers.drop(peer, reason);
  }

  /** Replaces every neighbour by passive members (HyParView); false when there is nothing to do. */
  rotateNeighbours(reason: string, prefer?: string): boolean {
    this.assertOpen();
    const fx = this.strategy.rotate?.(this.clock.now(), prefer);
    if (fx === undefined || (fx.disconnect.length === 0 && fx.connect.length === 0)) {
      this.log("warn", `${reason}; no neighbour to rotate in`);
      return false;
    }
    this.log("warn", `neighbours rotated out: ${reason}`);
    this.run(fx);
    return true;
  }

  /** New tags for this node: the same incarnation, a higher `tagsVersion`; gossiped. */
  setTags(tags: unknown): void {
    this.assertOpen();
    const checked = checkTags(tags);
    this.spec = { ...this.spec, tags: checked, tagsVersion: (this.spec.tagsVersion ?? 0) + 1 };
    this.run(this.strategy.setSelf(this.spec, this.clock.now()));
  }

  /** Takes an incarnation above `above` (this node was stale or declared dead) and says so. */
  takeIncarnationAbove(above: number, reason: string): void {
    const incarnation = Math.max(this.spec.incarnation + 1, above + 1);
    if (!Number.isSafeInteger(incarnation)) {
      this.log("error", `cannot take an incarnation above ${above}: ${reason}`);
      return;
    }
    this.refutations++;
    this.log("warn", `stale: ${reason}; taking incarnation ${incarnation}`);
    this.spec = { ...this.spec, incarnation };
    this.delivery.endpoints.causal.setSelfKey(`${this.cfg.name}@${incarnation}`);
    this.run(this.strategy.setSelf(this.spec, this.clock.now()));
  }

  rejoin(): void {
    const incarnation = Math.max(Math.floor(this.clock.wallNow()), this.spec.incarnation + 1);
    this.spec = { ...this.spec, incarnation };
    this.delivery.endpoints.causal.setSelfKey(`${this.cfg.name}@${incarnation}`);
    this.run(this.strategy.setSelf(this.spec, this.clock.now()));
  }

  onUp(peer: Peer): void {
    if (this.direct.up(peer)) return; // not a neighbour: only its senders are told
    this.log("info", `up (incarnation ${peer.spec.incarnation})`, peer.name);
    this.run(this.strategy.up(peer.name, this.clock.now()));
    if (this.peers.peers.get(peer.name) !== peer || !peer.up) {
      // The strategy closed it: what waited for this connection will not go.
      this.delivery.unreached(peer.name, new NodeDownError(peer.name, "closed by the strategy"));
      return;
    }
    const hello = this.strategy.greeting(peer.name);
    if (hello !== undefined) {
      peer.slots.get(DEFAULT_CHANNEL)?.[0]?.enqueueControl(this.frame(hello));
      this.strategy.stats.gossipsOut++;
    }
    this.delivery.peerUp(peer);
    this.upListeners.fire(peer.name, peer.slots.keys(), peer.spec.tags);
    this.joinWaiters.up(peer.name);
  }

  onDown(peer: Peer, why: string, error: unknown): void {
    if (this.direct.down(peer, error)) return;
    this.log("info", `down: ${why}`, peer.name);
    this.run(this.strategy.down(peer.name, this.clock.now()));
    this.delivery.peerDown(peer.name, error);
    this.downListeners.fire(peer.name, this.cfg.channels.keys(), peer.spec.tags);
  }

  onMessage(link: Link, m: WireMessage, frame: Uint8Array): void {
    if (m.tag === Tag.Gossip) {
      this.run(this.strategy.receive(link.peer, m.entries, this.clock.now()));
    } else {
      this.delivery.handle(m, link, frame);
    }
  }

  onConnectFailed(peer: Peer, e: unknown, code: HandshakeCode | undefined): void {
    if (this.direct.connectFailed(peer, e)) return;
    const addr = peer.spec.listenAddrs.map(formatAddress).join(",");
    const unreachable = this.strategy.unreachable?.(peer.name, this.clock.now());
    if (code === "stale" && e instanceof HandshakeError) {
      this.takeIncarnationAbove(e.known?.incarnation ?? this.spec.incarnation, e.message);
      return;
    }
    if (code !== undefined && FATAL_CODES.has(code)) {
      this.log("warn", `connect to ${addr} refused`, peer.name, e);
      this.joinWaiters.fail(peer.name, e);
      return;
    }
    this.log("debug", `connect to ${addr} failed`, peer.name, e);
    if (unreachable !== undefined) this.run(unreachable);
  }

  schedulePeriodic(): void {
    const { pingIntervalMs, retransmitIntervalMs, deadProbeIntervalMs } = this.cfg;
    const tick = () => {
      this.tickTimer = this.clock.setTimeout(tick, pingIntervalMs);
      const now = this.clock.now();
      if (this.swim !== undefined) this.swim.swim.tick(now);
      else checkLiveness(this.peers, now);
      this.direct.reapIdle(now);
      if (this.strategy.active) this.run(this.strategy.tick(now));
    };
    this.tickTimer = this.clock.setTimeout(tick, pingIntervalMs);
    // The retransmit timer runs only while acknowledged sends wait: an idle node does not wake for it.
    const acks = this.delivery.acks;
    const retransmit = () => {
      this.retransmitTimer = undefined;
      acks.retransmit(this.clock.now());
      if (acks.outstanding > 0 && !this.closed) arm();
    };
    const arm = () => {
      if (!this.closed) {
        this.retransmitTimer ??= this.clock.setTimeout(retransmit, retransmitIntervalMs);
      }
    };
    acks.onPending = arm;
    if (acks.outstanding > 0) arm();
    const probe = () => {
      this.probeTimer = this.clock.setTimeout(probe, deadProbeIntervalMs);
      if (this.strategy.active) {
        for (const spec of this.strategy.probeCandidates(2)) this.track(this.probeDead(spec));
      }
    };
    this.probeTimer = this.clock.setTimeout(probe, deadProbeIntervalMs);
  }

  /**
   * Probes a removed member: if it answers, it is alive after all (a partition
   * healed). A higher incarnation is adopted as a restart; at the same one it
   * is sent this node's view, which shows it its tombstone, so it refutes.
   */
  async probeDead(spec: NodeSpec): Promise<void> {
    try {
      const addr = spec.listenAddrs[0]!;
      const server = await this.peers.probe(addr, spec.name, (conn) =>
        conn.write([
          this.frame(this.strategy.greeting(spec.name)),
        ]));
      if (server.spec.incarnation > spec.incarnation) {
        this.run(this.strategy.seen(server.spec, this.clock.now()));
      }
    } catch (e) {
      if (e instanceof HandshakeError && e.code === "stale") {
        this.takeIncarnationAbove(e.known?.incarnation ?? this.spec.incarnation, e.message);
      }
    }
  }

  /** Plumtree's relay path (see relay.ts). */
  relay(): Relay {
    const delivery = this.delivery;
    return {
      frameBytesMax: this.cfg.frameBytesMax,
      register: (endpoint, handler) => delivery.register(endpoint, handler as Handler),
      beforeLeave: (fn) => {
        this.leaveHooks.add(fn);
        return () => void this.leaveHooks.delete(fn);
      },
      sendMany: (to, endpoint, msg, frame, channel, failed) =>
        void fanOut(
          delivery.fanOutHost,
          to,
          endpoint,
          msg,
          channel === undefined ? {} : { channel },
          frame,
          failed,
        ),
    };
  }
}

async function raceTimeout(p: Promise<unknown>, clock: Clock, ms: number): Promise<void> {
  let timer: TimerId | undefined;
  await Promise.race([
    p,
    new Promise<void>((r) => (timer = clock.setTimeout(r, ms))),
  ]);
  if (timer !== undefined) clock.clearTimeout(timer);
}
