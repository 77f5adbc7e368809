// Connections and links: one Peer per member this node keeps connected to,
// reconnection with jittered backoff, the read loop that hands decoded
// messages on, and the links' bookkeeping. The dialer opens connections, the
// acceptor takes them. Module-private: Node composes it.

import { decodeMessage, Tag } from "./wire.ts";
import { encodeValue } from "../base/codec.ts";
import { settle } from "../base/_settle.ts";
import { type ClosedError, FrameTooLargeError, NodeDownError } from "./errors.ts";
import { ProtocolError } from "../base/errors.ts";
import type { ServerHello } from "./handshake.ts";
import { Link } from "./_link.ts";
import { DEFAULT_CHANNEL, type NodeConfig } from "./_config.ts";
import type { NodeSpec } from "./spec.ts";
import {
  type Address,
  formatAddress,
  type FrameConnection,
  type FrameListener,
  type Transport,
} from "./transport.ts";
import type { Peer, PeerCounters, PeerRegistry, PeersHooks } from "./_peer.ts";
import { Dialer } from "./_dialer.ts";
import { Acceptor } from "./_acceptor.ts";

export {
  FATAL_CODES,
  instanceHex,
  type Peer,
  type PeerCounters,
  type PeersHooks,
} from "./_peer.ts";

/** Frames, or bytes, one connection's read loop handles before it lets others run. */
const READ_YIELD_FRAMES = 64;
const READ_YIELD_BYTES = 128 * 1024;

export class Peers implements PeerRegistry {
  readonly peers = new Map<string, Peer>();
  readonly incoming = new Set<Link>();
  readonly cfg: NodeConfig;
  readonly #listener: FrameListener;
  readonly hooks: PeersHooks;
  readonly track: (p: Promise<unknown>) => void;
  /** Open links, kept as they open and close (the bound is checked per connection). */
  links = 0;
  readonly #dialer: Dialer;
  readonly #acceptor: Acceptor;
  readonly counters: PeerCounters = {
    framesIn: 0,
    framesOut: 0,
    bytesIn: 0,
    bytesOut: 0,
    badConnections: 0,
    partitionDrops: 0,
    handshakesRefused: 0,
    handshakesEvicted: 0,
    handshakesTimedOut: 0,
    connectsRefused: 0,
  };
  closed = false;
  /** The peer whose next frame `#onHeard` waits for (see `watch`). */
  #watched: string | undefined;
  #onHeard: (() => void) | undefined;

  constructor(
    cfg: NodeConfig,
    transport: Transport,
    listener: FrameListener,
    hooks: PeersHooks,
    track: (p: Promise<unknown>) => void,
  ) {
    this.cfg = cfg;
    this.#listener = listener;
    this.hooks = hooks;
    this.track = track;
    this.#dialer = new Dialer(this, transport);
    this.#acceptor = new Acceptor(this, listener);
  }

  /**
   * Calls `heard` once when the next frame from `name` arrives; replaces the
   * last watch (one at a time: SWIM's probe in flight).
   */
  watch(name: string, heard: () => void): void {
    this.#watched = name;
    this.#onHeard = heard;
  }

  #heard(): void {
    const f = this.#onHeard;
    this.#watched = undefined;
    this.#onHeard = undefined;
    f?.();
  }

  get listenAddr(): Address {
    return this.#listener.addr;
  }

  /** Open connections, both directions. */
  connections(): { count: number; queuedBytes: number } {
    let count = 0, queuedBytes = 0;
    for (const l of this.incoming) {
      count++;
      queuedBytes += l.queuedBytes;
    }
    for (const p of this.peers.values()) {
      for (const ls of p.slots.values()) {
        for (const l of ls) {
          count++;
          queuedBytes += l.queuedBytes;
        }
      }
    }
    return { count, queuedBytes };
  }

  /**
   * Starts keeping a connection to `spec` (replacing any other spec of the
   * name; what waits for the old one's connection waits for the new one's).
   */
  ensure(spec: NodeSpec, lane?: "direct"): Peer {
    const existing = this.peers.get(spec.name);
    if (existing !== undefined && existing.spec === spec) return existing;
    if (existing !== undefined) {
      existing.opening = false; // its waiters carry over to the new spec's connection
      this.drop(existing, "replaced by a newer spec");
    }
    const peer: Peer = {
      name: spec.name,
      spec,
      up: false,
      connecting: undefined,
      queued: false,
      attempt: 0,
      retryTimer: undefined,
      slots: new Map(),
      rr: new Map(),
      lastHeard: this.cfg.clock.now(),
      instance: undefined,
      opening: true,
      usedAt: this.cfg.clock.now(),
      uses: 0,
      usesSeen: 0,
      ...(lane === undefined ? {} : { lane }),
    };
    this.peers.set(spec.name, peer);
    this.connectNow(peer);
    return peer;
  }

  /**
   * Closes everything of a peer and forgets it; fires down if it was up. The
   * error is made only when something is there to reject (junk peers are
   * dropped by the thousand, and an Error with its stack is not free).
   */
  drop(peer: Peer, why: string, error?: unknown): void {
    if (this.peers.get(peer.name) === peer) this.peers.delete(peer.name);
    this.#clearRetry(peer);
    this.#dialer.unqueue(peer);
    if (peer.connecting !== undefined) {
      peer.connecting.abort(error ?? new NodeDownError(peer.name, why));
    }
    if (peer.opening) {
      peer.opening = false;
      this.hooks.unreached(peer, error ?? new NodeDownError(peer.name, why));
    }
    this.markDown(peer, why, error);
  }

  /** Marks a peer down: closes its links, fires the hook once if it was up. */
  markDown(peer: Peer, why: string, error?: unknown): void {
    let e = error;
    const reason = () => e ??= new NodeDownError(peer.name, why);
    for (const links of peer.slots.values()) for (const l of links) l.close(reason());
    peer.slots.clear();
    if (this.incoming.size > 0) {
      for (const l of [...this.incoming]) {
        if (l.peer === peer.name && l.incarnation <= peer.spec.incarnation) {
          l.close(reason());
          this.incoming.delete(l);
        }
      }
    }
    if (peer.up) {
      peer.up = false;
      this.hooks.down(peer, why, reason());
    }
  }

  /** Closes the incoming connections of a node this node keeps no peer for (a refusal). */
  closeIncoming(name: string, why: string): void {
    for (const l of [...this.incoming]) {
      if (l.peer === name) {
        l.close(new NodeDownError(name, why));
        this.incoming.delete(l);
      }
    }
  }

  /** Tries to connect now rather than after the backoff. */
  connectNow(peer: Peer): void {
    if (peer.up || peer.connecting !== undefined || peer.queued) return;
    this.#clearRetry(peer);
    this.track(this.#dialer.connect(peer));
  }

  /** Resets the backoff of a peer and connects now (a partition healed, a join). */
  retryNow(peer: Peer): void {
    peer.attempt = 0;
    this.connectNow(peer);
  }

  #clearRetry(peer: Peer): void {
    if (peer.retryTimer !== undefined) {
      this.cfg.clock.clearTimeout(peer.retryTimer);
      peer.retryTimer = undefined;
    }
  }

  scheduleReconnect(peer: Peer): void {
    if (
      this.closed || !this.hooks.active() || this.peers.get(peer.name) !== peer ||
      peer.retryTimer !== undefined || peer.up
    ) return;
    const { backoffMinMs, backoffMaxMs, random, clock } = this.cfg;
    const base = Math.min(backoffMaxMs, backoffMinMs * 2 ** Math.min(peer.attempt, 30));
    const delay = base / 2 + random.next() * (base / 2); // "equal jitter"
    peer.attempt++;
    peer.retryTimer = clock.setTimeout(() => {
      peer.retryTimer = undefined;
      this.track(this.#dialer.connect(peer));
    }, delay);
  }

  makeLink(
    conn: FrameConnection,
    peer: string,
    incarnation: number,
    channel: string,
    index: number,
    outgoing: boolean,
    monotonic: boolean,
    instance: string,
  ): Link {
    this.links++;
    return new Link(
      conn,
      { peer, incarnation, channel, index, outgoing, monotonic, instance },
      this.cfg.link,
      () => this.cfg.clock.now(),
      (link, e) => this.#linkFailed(link, e),
      (p) => this.track(p),
      () => void this.links--,
      this.counters,
    );
  }

  #linkFailed(link: Link, e: unknown): void {
    if (link.closed) return;
    const bad = e instanceof ProtocolError || e instanceof FrameTooLargeError;
    if (bad) this.counters.badConnections++;
    this.cfg.log({
      level: bad ? "warn" : "debug",
      node: this.cfg.name,
      peer: link.peer,
      msg: `connection ${link.channel}/${link.index} ${link.outgoing ? "to" : "from"} peer closed${
        bad ? ` (${formatAddress(link.conn.remoteAddr)})` : ""
      }`,
      error: e,
    });
    link.close(new NodeDownError(link.peer, "connection lost", { cause: e }));
    this.incoming.delete(link);
    if (!link.outgoing) return;
    const peer = this.peers.get(link.peer);
    if (peer === undefined || peer.slots.get(link.channel)?.[link.index] !== link) return;
    this.markDown(peer, bad ? `protocol error: ${(e as Error).message}` : "connection lost");
    this.scheduleReconnect(peer);
  }

  /** Picks the link of `channel` for `key` (round robin without a key) for a frame to send: a use of the peer. */
  pick(peer: Peer, channel: string, key: string | number | undefined): Link {
    peer.uses++; // a direct connection in use stays open
    const links = peer.slots.get(channel);
    if (links === undefined || links.length === 0) throw new NodeDownError(peer.name);
    let i: number;
    if (key !== undefined) {
      i = hashKey(key) % links.length;
    } else {
      i = ((peer.rr.get(channel) ?? -1) + 1) % links.length;
      peer.rr.set(channel, i);
    }
    return links[i]!;
  }

  /** The default-channel link of an up peer, for control traffic. */
  control(name: string): Link | undefined {
    const p = this.peers.get(name);
    return p?.up ? p.slots.get(DEFAULT_CHANNEL)?.[0] : undefined;
  }

  /**
   * An open default-channel link with `name` either way: this node's own when
   * the peer is up, else one `name` opened to this node (routed messages and
   * their answers may travel on either).
   */
  anyLink(name: string): Link | undefined {
    const own = this.control(name);
    if (own !== undefined) return own;
    for (const l of this.incoming) {
      if (l.peer === name && !l.closed && l.channel === DEFAULT_CHANNEL) return l;
    }
    return undefined;
  }

  /** The names with an open link either way (peers up, and those with an incoming link). */
  linked(): string[] {
    const out = new Set<string>();
    for (const p of this.peers.values()) if (p.up) out.add(p.name);
    for (const l of this.incoming) if (!l.closed) out.add(l.peer);
    return [...out];
  }

  async readLoop(link: Link): Promise<void> {
    try {
      let frames = 0, bytes = 0;
      for (;;) {
        // Frames already buffered come back as resolved promises: without a yield,
        // a flooding peer would hold the event loop until its buffer drains.
        if (frames >= READ_YIELD_FRAMES || bytes >= READ_YIELD_BYTES) {
          frames = bytes = 0;
          await settle();
        }
        // A batch of the frames already buffered when the transport can (one
        // wake-up and one clock reading for all), else one frame.
        const conn = link.conn;
        let batch: Uint8Array[] | null;
        if (conn.readMany !== undefined) batch = await conn.readMany();
        else {
          const frame = await conn.read();
          batch = frame === null ? null : [frame];
        }
        if (batch === null) break;
        if (link.closed) return;
        frames += batch.length;
        let size = 0;
        for (const f of batch) size += f.length;
        bytes += size;
        if (this.hooks.isPartitioned(link.peer)) {
          this.counters.partitionDrops += batch.length;
          continue;
        }
        this.counters.framesIn += batch.length;
        this.counters.bytesIn += size;
        const peer = this.peers.get(link.peer);
        if (peer !== undefined && peer.spec.incarnation === link.incarnation) {
          peer.lastHeard = this.cfg.clock.now();
          if (this.#watched === peer.name) this.#heard();
        }
        for (const frame of batch) {
          const m = decodeMessage(frame);
          if (m.tag === Tag.Ping) link.enqueueControl(encodeValue([Tag.Pong, m.stamp]));
          else if (m.tag !== Tag.Pong) this.hooks.message(link, m, frame);
          if (link.closed) return;
        }
      }
      if (!link.closed) {
        this.#linkFailed(link, new NodeDownError(link.peer, "connection closed by peer"));
      }
    } catch (e) {
      this.#linkFailed(link, e);
    }
  }

  /** Accepts connections until the listener closes. */
  runAcceptLoop(): Promise<void> {
    return this.#acceptor.run();
  }

  /**
   * Learns the spec of whoever listens at `addr` with a short handshake; `after`
   * may write on the authenticated connection before it closes.
   */
  probe(
    addr: Address,
    expectName?: string,
    after?: (conn: FrameConnection) => Promise<void>,
  ): Promise<ServerHello> {
    return this.#dialer.probe(addr, expectName, after);
  }

  /** Closes the listener, every connection and pending handshake. */
  close(error: ClosedError): void {
    this.closed = true;
    this.#listener.close();
    for (const p of [...this.peers.values()]) this.drop(p, "node closed", error);
    for (const l of [...this.incoming]) l.close(error);
    this.incoming.clear();
    this.#acceptor.close();
    this.#dialer.close();
  }
}

/** FNV-1a over the key's string form. */
function hashKey(key: string | number): number {
  const s = String(key);
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}
