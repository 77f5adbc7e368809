// Outgoing connections: every connection of a peer opened at once (one per
// channel and index), with a deadline, at most `connectsPendingMax` peers at
// a time (the rest wait their turn), and short probes that learn who listens
// at an address. Module-private: Peers composes it.

import type { ServerHello } from "./handshake.ts";
import { clientHandshake } from "./handshake.ts";
import { HandshakeError, NodeDownError } from "./errors.ts";
import { namedForeign } from "./_foreign.ts";
import type { Link } from "./_link.ts";
import { type ChannelConfig, DEFAULT_CHANNEL } from "./_config.ts";
import { PARALLELISM_MAX } from "./spec.ts";
import type { Address, FrameConnection, Transport } from "./transport.ts";
import { formatAddress } from "./transport.ts";
import { instanceHex, type Peer, type PeerRegistry } from "./_peer.ts";

/**
 * A connect reached a newer incarnation of the peer: the attempt is void, the
 * newer spec replaces the peer (what waits for it keeps waiting).
 */
export class RestartedError extends HandshakeError {}

/** The outgoing side of one node's connections. */
/** Dials on peers' behalf waiting for their lane; past it such a dial fails at once. */
export const DIRECT_DIALS_WAITING_MAX = 64;

/** One lane of dials: how many run, who waits. */
interface Lane {
  connecting: number;
  readonly queue: Peer[];
  readonly max: number;
  readonly waitingMax: number;
}

export class Dialer {
  readonly #p: PeerRegistry;
  readonly #transport: Transport;
  /** The membership's own dials. */
  readonly #members: Lane;
  /** Dials on a peer's behalf (direct connections): a quarter of the slots, a bounded queue. */
  readonly #direct: Lane;
  #drainScheduled = false;

  constructor(registry: PeerRegistry, transport: Transport) {
    this.#p = registry;
    this.#transport = transport;
    const max = registry.cfg.connectsPendingMax;
    this.#members = { connecting: 0, queue: [], max, waitingMax: Infinity };
    this.#direct = {
      connecting: 0,
      queue: [],
      max: Math.max(1, Math.floor(max / 4)),
      waitingMax: DIRECT_DIALS_WAITING_MAX,
    };
  }

  #lane(peer: Peer): Lane {
    return peer.lane === "direct" ? this.#direct : this.#members;
  }

  /** Forgets a peer waiting for a connect slot. */
  unqueue(peer: Peer): void {
    if (!peer.queued) return;
    peer.queued = false;
    for (const lane of [this.#members, this.#direct]) {
      const i = lane.queue.indexOf(peer);
      if (i >= 0) lane.queue.splice(i, 1);
    }
  }

  close(): void {
    this.#members.queue.length = 0;
    this.#direct.queue.length = 0;
  }

  /** Opens every connection of a peer; up when all succeed, else backs off. */
  async connect(peer: Peer): Promise<void> {
    if (this.#p.closed || !this.#p.hooks.active() || peer.up || peer.connecting !== undefined) {
      return;
    }
    if (this.#p.peers.get(peer.name) !== peer) return;
    if (this.#p.hooks.isPartitioned(peer.name)) {
      this.#p.scheduleReconnect(peer);
      return;
    }
    const lane = this.#lane(peer);
    if (lane.connecting >= lane.max) {
      // Bounded: wait for a slot (junk members must not open thousands of sockets at once).
      if (peer.queued) return;
      if (lane.queue.length >= lane.waitingMax) {
        // Too many dials on peers' behalf: this one fails now (its sends are dropped, counted).
        this.#p.counters.connectsRefused++;
        const e = new NodeDownError(
          peer.name,
          "too many connections being opened on peers' behalf",
        );
        if (peer.opening) {
          peer.opening = false;
          this.#p.hooks.unreached(peer, e);
        }
        this.#p.hooks.connectFailed(peer, e, undefined);
        return;
      }
      peer.queued = true;
      lane.queue.push(peer);
      return;
    }
    lane.connecting++;
    const { clock, connectTimeoutMs } = this.#p.cfg;
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
      for (const ch of this.#p.cfg.channels.values()) {
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
      if (this.#p.peers.get(peer.name) !== peer || this.#p.closed || !this.#p.hooks.active()) {
        throw new NodeDownError(peer.name, "no longer a member");
      }
    } catch (e) {
      for (const l of opened) l.close(e);
      clock.clearTimeout(timer);
      peer.connecting = undefined;
      this.#releaseSlot(lane);
      const code = e instanceof HandshakeError ? e.code : undefined;
      if (code !== undefined && code !== "timeout") this.#p.counters.connectsRefused++;
      if (peer.opening && !(e instanceof RestartedError)) {
        peer.opening = false;
        this.#p.hooks.unreached(peer, e);
      }
      this.#p.hooks.connectFailed(peer, e, code);
      this.#p.scheduleReconnect(peer);
      return;
    }
    clock.clearTimeout(timer);
    peer.connecting = undefined;
    this.#releaseSlot(lane);
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
    for (const l of opened) this.#p.track(this.#p.readLoop(l));
    this.#p.hooks.up(peer);
  }

  #releaseSlot(lane: Lane): void {
    lane.connecting--;
    if (this.#drainScheduled) return;
    if (this.#members.queue.length === 0 && this.#direct.queue.length === 0) return;
    // The next queued attempts start from a timer, not in this microtask chain:
    // thousands of instant failures must not starve the event loop.
    this.#drainScheduled = true;
    this.#p.cfg.clock.setTimeout(() => {
      this.#drainScheduled = false;
      for (const l of [this.#members, this.#direct]) {
        while (l.queue.length > 0 && l.connecting < l.max) {
          const next = l.queue.shift()!;
          next.queued = false;
          if (this.#p.peers.get(next.name) === next && !this.#p.closed) {
            this.#p.track(this.connect(next));
          }
        }
      }
    }, 0);
  }

  async #openLink(
    peer: Peer,
    ch: ChannelConfig,
    index: number,
    signal: AbortSignal,
  ): Promise<{ link: Link; server: ServerHello }> {
    if (this.#p.links >= this.#p.cfg.connectionsMax) {
      throw new HandshakeError(`connectionsMax (${this.#p.cfg.connectionsMax}) reached`, {
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
            this.#p.hooks.handshakeConfig(),
            ch.name,
            index,
            peer.name,
          ).catch((e) => Promise.reject(namedForeign(e, formatAddress(addr))));
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
          queueMicrotask(() => this.#p.hooks.restarted(spec));
          throw new RestartedError(`"${peer.name}" restarted (incarnation ${inc})`);
        }
        c.frameBytesMax = this.#p.cfg.frameBytesMax;
        const link = this.#p.makeLink(
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

  /**
   * Learns the spec of whoever listens at `addr` with a short handshake; `after`
   * may write on the authenticated connection before it closes.
   */
  async probe(
    addr: Address,
    expectName?: string,
    after?: (conn: FrameConnection) => Promise<void>,
  ): Promise<ServerHello> {
    const { clock, connectTimeoutMs } = this.#p.cfg;
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
        this.#p.hooks.handshakeConfig(),
        DEFAULT_CHANNEL,
        PARALLELISM_MAX,
        expectName,
      ).catch((e) => Promise.reject(namedForeign(e, formatAddress(addr))));
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
}
