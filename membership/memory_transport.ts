/**
 * An in-process network for tests and simulations: seeded latency, loss and
 * partitions, driven by an injected {@linkcode Clock}.
 *
 * @module
 */

import { type Clock, type Random, seededRandom, systemClock } from "../base/clock.ts";
import { ClosedError, FrameTooLargeError } from "./errors.ts";
import {
  type Address,
  DEFAULT_FRAME_BYTES_MAX,
  formatAddress,
  type FrameConnection,
  type FrameListener,
  type Transport,
} from "./transport.ts";

/** Options of {@linkcode MemoryNetwork}. */
export interface MemoryNetworkOptions {
  /** Timers for latency (default {@linkcode systemClock}). */
  clock?: Clock;
  /**
   * Randomness for latency and loss.
   *
   * @default `seededRandom(seed)`
   */
  random?: Random;
  /**
   * Seed of the default random source.
   *
   * @default 1
   */
  seed?: number;
  /**
   * Latency of each frame: a fixed number or a `[min, max]` range in ms.
   *
   * @default 0
   */
  latencyMs?: number | readonly [number, number];
  /**
   * Probability in `[0, 1]` that a frame is dropped.
   *
   * @default 0
   */
  lossRate?: number;
  /**
   * Frames at the start of each connection direction that are never dropped by
   * `lossRate`, so that connection set-up is not itself lossy.
   *
   * @default 0
   */
  lossFreeFrames?: number;
  /**
   * Frames a receiver may hold unread before the sender's `write` waits, like a
   * TCP window.
   *
   * @default 1024
   */
  bufferFramesMax?: number;
}

/** Counters of a {@linkcode MemoryNetwork}. */
export interface MemoryNetworkStats {
  /** Frames handed to the network. */
  sent: number;
  /** Frames delivered to a receiver's buffer. */
  delivered: number;
  /** Frames dropped by `lossRate`. */
  lost: number;
  /** Frames dropped by a partition. */
  partitioned: number;
}

/**
 * A simulated network of hosts. Each host gets a {@linkcode MemoryTransport}
 * from {@linkcode MemoryNetwork.transport}; hosts can be partitioned and healed.
 *
 * @example Partition two hosts
 * ```ts
 * import { MemoryNetwork } from "@murmur/murmur/testing";
 * const net = new MemoryNetwork({ seed: 42, latencyMs: [1, 5], lossRate: 0.01 });
 * const a = net.transport("a"), b = net.transport("b");
 * const ref = net.partition(["a"], ["b"]);
 * const l = await b.listen({ hostname: "b", port: 1 });
 * await a.connect(l.addr).catch((e) => console.log(e.message));
 * net.heal(ref);
 * l.close();
 * ```
 */
export class MemoryNetwork {
  /** The clock that times latency. */
  readonly clock: Clock;
  readonly #random: Random;
  #latency: readonly [number, number];
  #lossRate: number;
  readonly #lossFreeFrames: number;
  readonly #bufferFramesMax: number;
  readonly #listeners = new Map<string, MemoryListener>();
  readonly #partitions = new Map<number, { a: Set<string>; b: Set<string> }>();
  #nextPartition = 1;
  #nextPort = new Map<string, number>();
  readonly #stats: MemoryNetworkStats = { sent: 0, delivered: 0, lost: 0, partitioned: 0 };

  /** Creates an empty network. */
  constructor(options: MemoryNetworkOptions = {}) {
    this.clock = options.clock ?? systemClock;
    this.#random = options.random ?? seededRandom(options.seed ?? 1);
    this.#latency = normalizeLatency(options.latencyMs ?? 0);
    this.#lossRate = checkRate(options.lossRate ?? 0);
    this.#lossFreeFrames = options.lossFreeFrames ?? 0;
    this.#bufferFramesMax = options.bufferFramesMax ?? 1024;
    if (!(this.#bufferFramesMax >= 1)) {
      throw new RangeError(`bufferFramesMax must be at least 1, got ${this.#bufferFramesMax}`);
    }
  }

  /** The transport of one host. */
  transport(hostname: string): MemoryTransport {
    if (typeof hostname !== "string" || hostname === "") {
      throw new TypeError("hostname must be a non-empty string");
    }
    return new MemoryTransport(this, hostname);
  }

  /** Changes the loss rate from now on. */
  setLossRate(rate: number): void {
    this.#lossRate = checkRate(rate);
  }

  /** Changes the latency from now on. */
  setLatency(latencyMs: number | readonly [number, number]): void {
    this.#latency = normalizeLatency(latencyMs);
  }

  /**
   * Cuts every frame between the hosts of `a` and those of `b` (both ways) and
   * refuses new connections between them. Returns a reference for `heal`.
   */
  partition(a: readonly string[], b: readonly string[]): number {
    const ref = this.#nextPartition++;
    this.#partitions.set(ref, { a: new Set(a), b: new Set(b) });
    return ref;
  }

  /** Heals one partition, or all of them when `ref` is omitted. */
  heal(ref?: number): void {
    if (ref === undefined) this.#partitions.clear();
    else this.#partitions.delete(ref);
  }

  /** Copies of the counters. */
  stats(): MemoryNetworkStats {
    return { ...this.#stats };
  }

  /** @internal */
  _cut(from: string, to: string): boolean {
    for (const p of this.#partitions.values()) {
      if ((p.a.has(from) && p.b.has(to)) || (p.b.has(from) && p.a.has(to))) return true;
    }
    return false;
  }

  /** @internal */
  _listen(host: string, addr: Address): MemoryListener {
    if (addr.hostname !== host) {
      throw new TypeError(`host "${host}" cannot listen on "${addr.hostname}"`);
    }
    let port = addr.port;
    if (port === 0) {
      port = this.#nextPort.get(host) ?? 40000;
      while (this.#listeners.has(formatAddress({ hostname: host, port }))) port++;
      this.#nextPort.set(host, port + 1);
    }
    const key = formatAddress({ hostname: host, port });
    if (this.#listeners.has(key)) throw new Deno.errors.AddrInUse(`${key} is in use`);
    const l = new MemoryListener({ hostname: host, port }, () => this.#listeners.delete(key));
    this.#listeners.set(key, l);
    return l;
  }

  /** @internal */
  _connect(from: string, addr: Address): MemoryConnection {
    const l = this.#listeners.get(formatAddress(addr));
    if (l === undefined || this._cut(from, addr.hostname)) {
      throw new Deno.errors.ConnectionRefused(`connection refused: ${formatAddress(addr)}`);
    }
    const local: Address = { hostname: from, port: 0 };
    const client = new MemoryConnection(this, from, addr);
    const server = new MemoryConnection(this, addr.hostname, local);
    client._peer = server;
    server._peer = client;
    l._offer(server);
    return client;
  }

  /** @internal Decides the fate of one frame: undefined to drop, else a delay in ms. */
  _route(from: string, to: string, index: number): number | undefined {
    this.#stats.sent++;
    if (this._cut(from, to)) {
      this.#stats.partitioned++;
      return undefined;
    }
    if (
      index >= this.#lossFreeFrames && this.#lossRate > 0 && this.#random.next() < this.#lossRate
    ) {
      this.#stats.lost++;
      return undefined;
    }
    this.#stats.delivered++;
    const [lo, hi] = this.#latency;
    return hi === 0 ? 0 : lo + this.#random.next() * (hi - lo);
  }

  /** @internal */
  get _bufferFramesMax(): number {
    return this.#bufferFramesMax;
  }
}

function normalizeLatency(l: number | readonly [number, number]): readonly [number, number] {
  const r: readonly [number, number] = typeof l === "number" ? [l, l] : l;
  if (!(r[0] >= 0 && r[1] >= r[0])) {
    throw new RangeError(`latencyMs must be >= 0 (and min <= max), got ${JSON.stringify(l)}`);
  }
  return r;
}

function checkRate(rate: number): number {
  if (!(rate >= 0 && rate <= 1)) throw new RangeError(`lossRate must be in [0, 1], got ${rate}`);
  return rate;
}

/**
 * The transport of one host of a {@linkcode MemoryNetwork}.
 *
 * @example
 * ```ts
 * import { MemoryNetwork } from "@murmur/murmur/testing";
 * const t = new MemoryNetwork().transport("n1");
 * const l = await t.listen({ hostname: "n1", port: 0 });
 * l.close();
 * ```
 */
export class MemoryTransport implements Transport {
  readonly #net: MemoryNetwork;
  /** The host name of this transport. */
  readonly hostname: string;

  /** Use {@linkcode MemoryNetwork.transport} instead. */
  constructor(net: MemoryNetwork, hostname: string) {
    this.#net = net;
    this.hostname = hostname;
  }

  /** Listens on `addr`, whose hostname must be this transport's host. */
  listen(addr: Address): Promise<FrameListener> {
    return Promise.resolve().then(() => this.#net._listen(this.hostname, addr));
  }

  /** Connects to `addr`; refused when nobody listens or a partition is in the way. */
  connect(addr: Address): Promise<FrameConnection> {
    return Promise.resolve().then(() => this.#net._connect(this.hostname, addr));
  }
}

class MemoryListener implements FrameListener {
  readonly addr: Address;
  readonly #onClose: () => void;
  #queue: MemoryConnection[] = [];
  #waiter: ((c: MemoryConnection | null) => void) | undefined;
  #closed = false;

  constructor(addr: Address, onClose: () => void) {
    this.addr = addr;
    this.#onClose = onClose;
  }

  _offer(c: MemoryConnection): void {
    if (this.#waiter) {
      const w = this.#waiter;
      this.#waiter = undefined;
      w(c);
    } else this.#queue.push(c);
  }

  accept(): Promise<FrameConnection | null> {
    if (this.#closed) return Promise.resolve(null);
    const c = this.#queue.shift();
    if (c) return Promise.resolve(c);
    return new Promise((resolve) => (this.#waiter = resolve));
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#onClose();
    for (const c of this.#queue) c.close();
    this.#queue = [];
    this.#waiter?.(null);
    this.#waiter = undefined;
  }
}

class MemoryConnection implements FrameConnection {
  readonly remoteAddr: Address;
  frameBytesMax: number = DEFAULT_FRAME_BYTES_MAX;
  _peer: MemoryConnection | undefined;
  readonly #net: MemoryNetwork;
  readonly #host: string;
  #inbox: Uint8Array[] = [];
  #reader: { resolve: (f: Uint8Array | null) => void; reject: (e: unknown) => void } | undefined;
  #writers: (() => void)[] = [];
  #closed = false;
  #remoteClosed = false;
  #sentIndex = 0;
  #lastDeliveryAt = 0;
  /** Frames this side sent that are still on the wire. */
  #outgoing = 0;
  /** Frames on the wire from this side, in order, with their arrival times. */
  #wire: { at: number; frame: Uint8Array }[] = [];
  /** Frames on the wire towards this side. */
  #incoming = 0;

  constructor(net: MemoryNetwork, host: string, remote: Address) {
    this.#net = net;
    this.#host = host;
    this.remoteAddr = remote;
  }

  read(): Promise<Uint8Array | null> {
    const f = this.#inbox.shift();
    if (f !== undefined) {
      this.#wakeWriters();
      if (f.length > this.frameBytesMax) {
        return Promise.reject(new FrameTooLargeError(f.length, this.frameBytesMax));
      }
      return Promise.resolve(f);
    }
    if (this.#ended()) return Promise.resolve(null);
    return new Promise((resolve, reject) => (this.#reader = { resolve, reject }));
  }

  #ended(): boolean {
    return this.#closed || (this.#remoteClosed && this.#incoming === 0);
  }

  async write(frames: readonly Uint8Array[]): Promise<void> {
    for (const frame of frames) {
      const peer = this._peer;
      if (this.#closed || this.#remoteClosed || peer === undefined) {
        throw new ClosedError("connection is closed");
      }
      while (peer.#inbox.length + peer.#incoming >= this.#net._bufferFramesMax) {
        await new Promise<void>((r) => peer.#writers.push(r));
        if (this.#closed || this.#remoteClosed) throw new ClosedError("connection is closed");
      }
      const delay = this.#net._route(this.#host, peer.#host, this.#sentIndex++);
      if (delay === undefined) continue;
      const copy = frame.slice();
      if (delay === 0 && this.#outgoing === 0) {
        peer._deliver(copy);
        continue;
      }
      // FIFO per direction despite random latency: one timer for the head of the wire.
      const clock = this.#net.clock;
      const at = Math.max(clock.now() + delay, this.#lastDeliveryAt);
      this.#lastDeliveryAt = at;
      this.#outgoing++;
      peer.#incoming++;
      this.#wire.push({ at, frame: copy });
      if (this.#wire.length === 1) this.#armWire();
    }
  }

  #armWire(): void {
    const head = this.#wire[0];
    if (head === undefined) return;
    const clock = this.#net.clock;
    clock.setTimeout(() => {
      const peer = this._peer!;
      while (this.#wire.length > 0 && this.#wire[0]!.at <= clock.now()) {
        const { frame } = this.#wire.shift()!;
        this.#outgoing--;
        peer.#incoming--;
        peer._deliver(frame);
      }
      this.#armWire();
    }, Math.max(0, head.at - clock.now()));
  }

  _deliver(frame: Uint8Array): void {
    if (this.#closed) return;
    const r = this.#reader;
    if (r !== undefined) {
      this.#reader = undefined;
      if (frame.length > this.frameBytesMax) {
        r.reject(new FrameTooLargeError(frame.length, this.frameBytesMax));
      } else r.resolve(frame);
    } else this.#inbox.push(frame);
    this.#maybeEnd();
  }

  #maybeEnd(): void {
    if (this.#reader !== undefined && this.#ended()) {
      const r = this.#reader;
      this.#reader = undefined;
      r.resolve(null);
    }
  }

  #wakeWriters(): void {
    const ws = this.#writers;
    this.#writers = [];
    for (const w of ws) w();
  }

  _remoteClose(): void {
    // Like a TCP FIN: frames already on the wire still arrive, then the stream ends.
    this.#remoteClosed = true;
    this.#maybeEnd();
    this.#wakeWriters();
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#inbox = [];
    this.#reader?.resolve(null);
    this.#reader = undefined;
    this.#wakeWriters();
    this._peer?._remoteClose();
  }
}
