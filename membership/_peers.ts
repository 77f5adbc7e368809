// Connections and links: one Peer per member this node keeps connected to,
// outgoing connects with jittered backoff and a concurrency bound, the accept
// loop with handshake deadlines and bounds, liveness (pings on idle links, a
// silent peer is down), and the read loop that hands decoded messages on.
// Module-private: Node composes it.

import { setImmediate } from "node:timers";
import type { TimerId } from "../base/clock.ts";
import { decodeMessage, Tag, type WireMessage } from "./wire.ts";
import { encodeValue } from "../base/codec.ts";
import {
  type ClosedError,
  FrameTooLargeError,
  type HandshakeCode,
  HandshakeError,
  NodeDownError,
} from "./errors.ts";
import { ProtocolError } from "../base/errors.ts";
import {
  type Accepted,
  clientHandshake,
  type HandshakeConfig,
  type Refusal,
  serverHandshake,
  type ServerHello,
} from "./handshake.ts";
import { Link } from "./_link.ts";
import { type ChannelConfig, DEFAULT_CHANNEL, type NodeConfig } from "./_config.ts";
import type { NodeSpec } from "./spec.ts";
import {
  type Address,
  formatAddress,
  type FrameConnection,
  type FrameListener,
  type Transport,
} from "./transport.ts";
import { PARALLELISM_MAX } from "./spec.ts";

/** Counters kept by the connection layer (part of NodeStats). */
export interface PeerCounters {
  framesIn: number;
  framesOut: number;
  /** Frame bytes read after handshakes (without the length prefix). */
  bytesIn: number;
  /** Frame bytes written (without the length prefix). */
  bytesOut: number;
  badConnections: number;
  partitionDrops: number;
  handshakesRefused: number;
  handshakesEvicted: number;
  handshakesTimedOut: number;
  connectsRefused: number;
}

export interface Peer {
  readonly name: string;
  readonly spec: NodeSpec;
  up: boolean;
  connecting: AbortController | undefined;
  /** Waiting for a connect slot. */
  queued: boolean;
  attempt: number;
  retryTimer: TimerId | undefined;
  readonly slots: Map<string, Link[]>;
  readonly rr: Map<string, number>;
  lastHeard: number;
  /** The peer's process instance, from the last successful outgoing handshake. */
  instance: string | undefined;
  /**
   * True from `ensure` until the first connect attempt ends: up, failed, or
   * the peer dropped. Sends to a member whose connection is still opening
   * wait for it instead of being dropped.
   */
  opening: boolean;
  /** When a use was last noticed (at a liveness tick); a direct connection unused for long is closed. */
  usedAt: number;
  /** Frames sent to this peer (sends, calls, retransmissions: each picks a link); `usedAt` is brought up to date from it (no clock reading per send). */
  uses: number;
  /** `uses` when `usedAt` was last brought up to date. */
  usesSeen: number;
}

export interface PeersHooks {
  /** Decides whether to take an authenticated incoming connection. */
  admit(a: Accepted, instance: string): Refusal | undefined;
  /** An authenticated incoming connection was taken. */
  accepted(a: Accepted, link: Link): void;
  up(peer: Peer): void;
  down(peer: Peer, why: string, error: unknown): void;
  /** A decoded message that is not liveness traffic. */
  /** `frame` is the bytes `m` was decoded from (a copy owned by the receiver). */
  message(link: Link, m: WireMessage, frame: Uint8Array): void;
  /** An outgoing connect failed; `code` is the handshake code when there is one. */
  connectFailed(peer: Peer, error: unknown, code: HandshakeCode | undefined): void;
  /**
   * A peer's first connection attempt ended without it coming up (it failed,
   * or the peer was dropped): what waited for it can give up. Called before
   * `connectFailed`.
   */
  unreached(peer: Peer, error: unknown): void;
  /** The server answered with a higher incarnation than the peer's spec: it restarted. */
  restarted(spec: NodeSpec): void;
  handshakeConfig(): HandshakeConfig;
  isPartitioned(name: string): boolean;
  /** Whether this node is in a cluster (not left, not closed). */
  active(): boolean;
}

interface Pending {
  readonly conn: FrameConnection;
  readonly host: string;
  progressed: boolean;
}

/** Frames, or bytes, one connection's read loop handles before it lets others run. */
const READ_YIELD_FRAMES = 64;
const READ_YIELD_BYTES = 128 * 1024;

/** Hex form of an instance id. */
export function instanceHex(b: Uint8Array): string {
  let s = "";
  for (const x of b) s += x.toString(16).padStart(2, "0");
  return s;
}

/** Handshake codes after which retrying the same peer soon is pointless (a join fails at once). */
export const FATAL_CODES: ReadonlySet<HandshakeCode> = new Set<HandshakeCode>([
  "auth",
  "cluster",
  "protocol",
  "name-in-use",
  "mismatch",
  "left",
  "full",
]);

export class Peers {
  readonly peers = new Map<string, Peer>();
  readonly incoming = new Set<Link>();
  readonly #cfg: NodeConfig;
  readonly #transport: Transport;
  readonly #listener: FrameListener;
  readonly #hooks: PeersHooks;
  readonly #track: (p: Promise<unknown>) => void;
  readonly #pending = new Map<FrameConnection, Pending>();
  #connecting = 0;
  /** Open links, kept as they open and close (the bound is checked per connection). */
  #links = 0;
  readonly #connectQueue: Peer[] = [];
  #drainScheduled = false;
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
  #closed = false;

  constructor(
    cfg: NodeConfig,
    transport: Transport,
    listener: FrameListener,
    hooks: PeersHooks,
    track: (p: Promise<unknown>) => void,
  ) {
    this.#cfg = cfg;
    this.#transport = transport;
    this.#listener = listener;
    this.#hooks = hooks;
    this.#track = track;
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
  ensure(spec: NodeSpec): Peer {
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
      lastHeard: this.#cfg.clock.now(),
      instance: undefined,
      opening: true,
      usedAt: this.#cfg.clock.now(),
      uses: 0,
      usesSeen: 0,
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
    if (peer.queued) {
      peer.queued = false;
      const i = this.#connectQueue.indexOf(peer);
      if (i >= 0) this.#connectQueue.splice(i, 1);
    }
    if (peer.connecting !== undefined) {
      peer.connecting.abort(error ?? new NodeDownError(peer.name, why));
    }
    if (peer.opening) {
      peer.opening = false;
      this.#hooks.unreached(peer, error ?? new NodeDownError(peer.name, why));
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
      this.#hooks.down(peer, why, reason());
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
    this.#track(this.#connect(peer));
  }

  /** Resets the backoff of a peer and connects now (a partition healed, a join). */
  retryNow(peer: Peer): void {
    peer.attempt = 0;
    this.connectNow(peer);
  }

  #clearRetry(peer: Peer): void {
    if (peer.retryTimer !== undefined) {
      this.#cfg.clock.clearTimeout(peer.retryTimer);
      peer.retryTimer = undefined;
    }
  }

  scheduleReconnect(peer: Peer): void {
    if (
      this.#closed || !this.#hooks.active() || this.peers.get(peer.name) !== peer ||
      peer.retryTimer !== undefined || peer.up
    ) return;
    const { backoffMinMs, backoffMaxMs, random, clock } = this.#cfg;
    const base = Math.min(backoffMaxMs, backoffMinMs * 2 ** Math.min(peer.attempt, 30));
    const delay = base / 2 + random.next() * (base / 2); // "equal jitter"
    peer.attempt++;
    peer.retryTimer = clock.setTimeout(() => {
      peer.retryTimer = undefined;
      this.#track(this.#connect(peer));
    }, delay);
  }

  /** Opens every connection of a peer; up when all succeed, else backs off. */
  async #connect(peer: Peer): Promise<void> {
    if (this.#closed || !this.#hooks.active() || peer.up || peer.connecting !== undefined) return;
    if (this.peers.get(peer.name) !== peer) return;
    if (this.#hooks.isPartitioned(peer.name)) {
      this.scheduleReconnect(peer);
      return;
    }
    if (this.#connecting >= this.#cfg.connectsPendingMax) {
      // Bounded: wait for a slot (junk members must not open thousands of sockets at once).
      if (!peer.queued) {
        peer.queued = true;
        this.#connectQueue.push(peer);
      }
      return;
    }
    this.#connecting++;
    const { clock, connectTimeoutMs } = this.#cfg;
    const ctl = new AbortController();
    peer.connecting = ctl;
    const timer = clock.setTimeout(
      () =>
        ctl.abort(
          new HandshakeError(`connect timed out after ${connectTimeoutMs} ms`, { code: "timeout" }),
        ),
      connectTimeoutMs,
    );
    const opened: Link[] = [];
    let server: ServerHello | undefined;
    try {
      const jobs: Promise<{ link: Link; server: ServerHello }>[] = [];
      for (const ch of this.#cfg.channels.values()) {
        for (let i = 0; i < ch.parallelism; i++) jobs.push(this.#openLink(peer, ch, i, ctl.signal));
      }
      const results = await Promise.allSettled(jobs);
      for (const r of results) {
        if (r.status === "fulfilled") {
          opened.push(r.value.link);
          server = r.value.server;
        }
      }
      const failed = results.find((r) => r.status === "rejected");
      if (failed !== undefined) throw (failed as PromiseRejectedResult).reason;
      if (ctl.signal.aborted) throw ctl.signal.reason;
      if (this.peers.get(peer.name) !== peer || this.#closed || !this.#hooks.active()) {
        throw new NodeDownError(peer.name, "no longer a member");
      }
    } catch (e) {
      for (const l of opened) l.close(e);
      clock.clearTimeout(timer);
      peer.connecting = undefined;
      this.#releaseSlot();
      const code = e instanceof HandshakeError ? e.code : undefined;
      if (code !== undefined && code !== "timeout") this.counters.connectsRefused++;
      if (peer.opening && !(e instanceof RestartedError)) {
        peer.opening = false;
        this.#hooks.unreached(peer, e);
      }
      this.#hooks.connectFailed(peer, e, code);
      this.scheduleReconnect(peer);
      return;
    }
    clock.clearTimeout(timer);
    peer.connecting = undefined;
    this.#releaseSlot();
    for (const l of opened) {
      let list = peer.slots.get(l.channel);
      if (list === undefined) peer.slots.set(l.channel, list = []);
      list[l.index] = l;
    }
    peer.attempt = 0;
    peer.lastHeard = clock.now();
    peer.instance = server === undefined ? undefined : instanceHex(server.instance);
    peer.opening = false;
    peer.up = true;
    for (const l of opened) this.#track(this.#readLoop(l));
    this.#hooks.up(peer);
  }

  #releaseSlot(): void {
    this.#connecting--;
    if (this.#connectQueue.length === 0 || this.#drainScheduled) return;
    // The next queued attempts start from a timer, not in this microtask chain:
    // thousands of instant failures must not starve the event loop.
    this.#drainScheduled = true;
    this.#cfg.clock.setTimeout(() => {
      this.#drainScheduled = false;
      while (this.#connectQueue.length > 0 && this.#connecting < this.#cfg.connectsPendingMax) {
        const next = this.#connectQueue.shift()!;
        next.queued = false;
        if (this.peers.get(next.name) === next && !this.#closed) this.#track(this.#connect(next));
      }
    }, 0);
  }

  async #openLink(
    peer: Peer,
    ch: ChannelConfig,
    index: number,
    signal: AbortSignal,
  ): Promise<{ link: Link; server: ServerHello }> {
    if (this.#links >= this.#cfg.connectionsMax) {
      throw new HandshakeError(`connectionsMax (${this.#cfg.connectionsMax}) reached`, {
        code: "limit",
      });
    }
    let lastError: unknown;
    for (const addr of peer.spec.listenAddrs) {
      signal.throwIfAborted();
      let conn: FrameConnection | undefined;
      try {
        conn = await this.#transport.connect(addr, { signal });
        const c = conn;
        const onAbort = () => c.close();
        signal.addEventListener("abort", onAbort, { once: true });
        let server: ServerHello;
        try {
          server = await clientHandshake(
            c,
            this.#hooks.handshakeConfig(),
            ch.name,
            index,
            peer.name,
          );
        } finally {
          signal.removeEventListener("abort", onAbort);
        }
        signal.throwIfAborted();
        const inc = server.spec.incarnation;
        if (inc < peer.spec.incarnation) {
          throw new HandshakeError(`"${peer.name}" answered with stale incarnation ${inc}`);
        }
        if (inc > peer.spec.incarnation) {
          // It restarted at the same address: adopt the newer spec, this attempt is void.
          const spec = server.spec;
          queueMicrotask(() => this.#hooks.restarted(spec));
          throw new RestartedError(`"${peer.name}" restarted (incarnation ${inc})`);
        }
        c.frameBytesMax = this.#cfg.frameBytesMax;
        const link = this.#makeLink(
          c,
          peer.name,
          peer.spec.incarnation,
          ch.name,
          index,
          true,
          ch.monotonic,
          instanceHex(server.instance),
        );
        return { link, server };
      } catch (e) {
        conn?.close();
        lastError = signal.aborted ? signal.reason : e;
        // A refusal is the peer's answer: other addresses of the same node will say the same.
        if (signal.aborted || (e instanceof HandshakeError && e.code !== undefined)) break;
      }
    }
    throw lastError ?? new NodeDownError(peer.name, "has no listen address");
  }

  #makeLink(
    conn: FrameConnection,
    peer: string,
    incarnation: number,
    channel: string,
    index: number,
    outgoing: boolean,
    monotonic: boolean,
    instance: string,
  ): Link {
    this.#links++;
    return new Link(
      conn,
      { peer, incarnation, channel, index, outgoing, monotonic, instance },
      this.#cfg.link,
      () => this.#cfg.clock.now(),
      (link, e) => this.#linkFailed(link, e),
      (p) => this.#track(p),
      () => void this.#links--,
      this.counters,
    );
  }

  #linkFailed(link: Link, e: unknown): void {
    if (link.closed) return;
    const bad = e instanceof ProtocolError || e instanceof FrameTooLargeError;
    if (bad) this.counters.badConnections++;
    this.#cfg.log({
      level: bad ? "warn" : "debug",
      node: this.#cfg.name,
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

  /** Liveness: a silent peer is down; idle links get a ping. */
  checkLiveness(now: number): void {
    const { failureTimeoutMs, pingIntervalMs } = this.#cfg;
    for (const p of [...this.peers.values()]) {
      if (!p.up) continue;
      if (now - p.lastHeard > failureTimeoutMs) {
        this.markDown(p, `silent for ${Math.round(now - p.lastHeard)} ms`);
        this.scheduleReconnect(p);
        continue;
      }
      if (this.#hooks.isPartitioned(p.name)) {
        this.counters.partitionDrops++;
        continue;
      }
      for (const links of p.slots.values()) {
        for (const l of links) {
          if (now - l.lastSentAt >= pingIntervalMs) {
            l.lastSentAt = now;
            l.enqueueControl(encodeValue([Tag.Ping, Math.floor(now)]));
          }
        }
      }
    }
  }

  // ------------------------------------------------------------- incoming

  async runAcceptLoop(): Promise<void> {
    for (;;) {
      let conn: FrameConnection | null;
      try {
        conn = await this.#listener.accept();
      } catch (e) {
        if (this.#closed) return;
        this.#cfg.log({ level: "warn", node: this.#cfg.name, msg: "accept failed", error: e });
        continue;
      }
      if (conn === null) return;
      if (this.#closed) {
        conn.close();
        return;
      }
      if (this.#links >= this.#cfg.connectionsMax) {
        this.#cfg.log({
          level: "warn",
          node: this.#cfg.name,
          msg: `connection from ${
            formatAddress(conn.remoteAddr)
          } refused: connectionsMax (${this.#cfg.connectionsMax}) reached`,
        });
        conn.close();
        continue;
      }
      if (!this.#makeRoomFor(conn)) continue;
      this.#track(this.#acceptOne(conn));
    }
  }

  /**
   * Keeps the handshake bounds (in total and per remote address). At a bound,
   * the oldest pending handshake that has not sent its hello yet is closed to
   * make room: slow or silent connections cannot keep a legitimate node (whose
   * hello arrives at once) out. With none stalled, the new connection is refused.
   */
  #makeRoomFor(conn: FrameConnection): boolean {
    const host = conn.remoteAddr.hostname;
    let sameHost = 0;
    for (const p of this.#pending.values()) if (p.host === host) sameHost++;
    const perHostFull = sameHost >= this.#cfg.handshakesPendingPerAddressMax;
    const totalFull = this.#pending.size >= this.#cfg.handshakesPendingMax;
    if (!perHostFull && !totalFull) return true;
    for (const p of this.#pending.values()) { // insertion order: oldest first
      if (p.progressed || (perHostFull && p.host !== host)) continue;
      this.#pending.delete(p.conn);
      p.conn.close();
      this.counters.handshakesEvicted++;
      return true;
    }
    this.counters.handshakesRefused++;
    this.#cfg.log({
      level: "warn",
      node: this.#cfg.name,
      msg: `connection from ${
        formatAddress(conn.remoteAddr)
      } refused: too many handshakes in progress`,
    });
    conn.close();
    return false;
  }

  async #acceptOne(conn: FrameConnection): Promise<void> {
    const pending: Pending = { conn, host: conn.remoteAddr.hostname, progressed: false };
    this.#pending.set(conn, pending);
    const { clock, handshakeTimeoutMs } = this.#cfg;
    let timedOut = false;
    const timer = clock.setTimeout(() => {
      timedOut = true;
      conn.close();
    }, handshakeTimeoutMs);
    let accepted: Accepted;
    let instance = "";
    const from = formatAddress(conn.remoteAddr);
    try {
      accepted = await serverHandshake(
        conn,
        this.#hooks.handshakeConfig(),
        (a) => this.#hooks.admit(a, instance = instanceHex(a.instance)),
        { onHello: () => void (pending.progressed = true) },
      );
    } catch (e) {
      const code = e instanceof HandshakeError ? e.code : undefined;
      const bad = e instanceof ProtocolError || e instanceof FrameTooLargeError ||
        code === "auth" || code === "cluster" || code === "protocol";
      if (bad) this.counters.badConnections++;
      if (timedOut) this.counters.handshakesTimedOut++;
      if (code !== undefined) this.counters.handshakesRefused++;
      const refused = code !== undefined && code !== "timeout";
      this.#cfg.log({
        level: bad || refused ? "warn" : "debug",
        node: this.#cfg.name,
        msg: timedOut
          ? `handshake from ${from} timed out after ${handshakeTimeoutMs} ms`
          : `handshake from ${from} ${refused ? "refused" : "failed"}`,
        error: e,
      });
      conn.close();
      return;
    } finally {
      clock.clearTimeout(timer);
      this.#pending.delete(conn);
    }
    if (this.#closed) {
      conn.close();
      return;
    }
    conn.frameBytesMax = this.#cfg.frameBytesMax;
    const ch = this.#cfg.channels.get(accepted.channel);
    const link = this.#makeLink(
      conn,
      accepted.spec.name,
      accepted.spec.incarnation,
      accepted.channel,
      accepted.index,
      false,
      ch?.monotonic ?? false,
      instance,
    );
    this.incoming.add(link);
    this.#hooks.accepted(accepted, link);
    const peer = this.peers.get(accepted.spec.name);
    if (peer !== undefined && peer.spec.incarnation === accepted.spec.incarnation) {
      peer.lastHeard = clock.now();
      // It is reachable right now: no need to wait for the backoff.
      if (!peer.up && peer.connecting === undefined) this.retryNow(peer);
    }
    this.#track(this.#readLoop(link));
  }

  async #readLoop(link: Link): Promise<void> {
    try {
      let frames = 0, bytes = 0;
      for (;;) {
        // Frames already buffered come back as resolved promises: without a yield,
        // a flooding peer would hold the event loop until its buffer drains.
        if (frames >= READ_YIELD_FRAMES || bytes >= READ_YIELD_BYTES) {
          frames = bytes = 0;
          await new Promise((r) => setImmediate(r));
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
        if (this.#hooks.isPartitioned(link.peer)) {
          this.counters.partitionDrops += batch.length;
          continue;
        }
        this.counters.framesIn += batch.length;
        this.counters.bytesIn += size;
        const peer = this.peers.get(link.peer);
        if (peer !== undefined && peer.spec.incarnation === link.incarnation) {
          peer.lastHeard = this.#cfg.clock.now();
        }
        for (const frame of batch) {
          const m = decodeMessage(frame);
          if (m.tag === Tag.Ping) link.enqueueControl(encodeValue([Tag.Pong, m.stamp]));
          else if (m.tag !== Tag.Pong) this.#hooks.message(link, m, frame);
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

  /**
   * Learns the spec of whoever listens at `addr` with a short handshake; `after`
   * may write on the authenticated connection before it closes.
   */
  async probe(
    addr: Address,
    expectName?: string,
    after?: (conn: FrameConnection) => Promise<void>,
  ): Promise<ServerHello> {
    const { clock, connectTimeoutMs } = this.#cfg;
    const ctl = new AbortController();
    const timer = clock.setTimeout(
      () =>
        ctl.abort(
          new HandshakeError(
            `no handshake from ${formatAddress(addr)} within ${connectTimeoutMs} ms`,
            { code: "timeout" },
          ),
        ),
      connectTimeoutMs,
    );
    let conn: FrameConnection | undefined;
    try {
      conn = await this.#transport.connect(addr, { signal: ctl.signal });
      const c = conn;
      ctl.signal.addEventListener("abort", () => c.close(), { once: true });
      const server = await clientHandshake(
        c,
        this.#hooks.handshakeConfig(),
        DEFAULT_CHANNEL,
        PARALLELISM_MAX,
        expectName,
      );
      if (after !== undefined) await after(c);
      return server;
    } catch (e) {
      if (ctl.signal.aborted) throw ctl.signal.reason;
      throw e;
    } finally {
      clock.clearTimeout(timer);
      conn?.close();
    }
  }

  /** Closes the listener, every connection and pending handshake. */
  close(error: ClosedError): void {
    this.#closed = true;
    this.#listener.close();
    for (const p of [...this.peers.values()]) this.drop(p, "node closed", error);
    for (const l of [...this.incoming]) l.close(error);
    this.incoming.clear();
    for (const p of [...this.#pending.values()]) p.conn.close();
    this.#pending.clear();
    this.#connectQueue.length = 0;
  }
}

/**
 * A connect reached a newer incarnation of the peer: the attempt is void, the
 * newer spec replaces the peer (what waits for it keeps waiting).
 */
class RestartedError extends HandshakeError {}

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
