/**
 * TCP (and TLS) transport over `Deno.listen` / `Deno.connect`.
 *
 * @module
 */

import { FrameTooLargeError, HandshakeError } from "./errors.ts";
import { ProtocolError } from "../base/errors.ts";
import { framedBytes, framesInto } from "./_framing.ts";
import { namedConnectError } from "./_foreign.ts";
import {
  type Address,
  type ConnectOptions,
  DEFAULT_FRAME_BYTES_MAX,
  FRAME_HEADER_BYTES,
  type FrameConnection,
  type FrameListener,
  type Transport,
} from "./transport.ts";

/** TLS settings shared by listeners and outgoing connections. */
export interface TlsOptions {
  /** PEM certificate chain of this node, read from a file. */
  certFile?: string;
  /** PEM private key of this node, read from a file. */
  keyFile?: string;
  /** PEM certificate chain given inline (instead of `certFile`). */
  cert?: string;
  /** PEM private key given inline (instead of `keyFile`). */
  key?: string;
  /** PEM CA certificates trusted when connecting (default: the system roots). */
  caCerts?: string[];
}

/** Options of {@linkcode TcpTransport}. */
export interface TcpTransportOptions {
  /** Use TLS on every connection (Deno.listenTls / Deno.connectTls). */
  tls?: TlsOptions;
  /**
   * Read buffer size per connection in bytes.
   *
   * @default 65536
   */
  readBufferBytes?: number;
}

const READ_BUFFER_BYTES_DEFAULT = 64 * 1024;

/**
 * The TCP transport, optionally with TLS. Frames are a 4-byte big-endian
 * length and a body; batches of frames are coalesced into one write.
 *
 * @example Two TCP endpoints on loopback
 * ```ts
 * import { TcpTransport } from "@murmur/murmur/membership";
 * const t = new TcpTransport();
 * const l = await t.listen({ hostname: "127.0.0.1", port: 0 });
 * const c = await t.connect(l.addr);
 * const s = (await l.accept())!;
 * await c.write([new TextEncoder().encode("hi")]);
 * console.log(new TextDecoder().decode((await s.read())!)); // hi
 * c.close(); s.close(); l.close();
 * ```
 */
export class TcpTransport implements Transport {
  readonly #tls: TlsOptions | undefined;
  readonly #readBufferBytes: number;

  /** Creates the transport; nothing is opened until `listen` or `connect`. */
  constructor(options: TcpTransportOptions = {}) {
    this.#tls = options.tls;
    this.#readBufferBytes = options.readBufferBytes ?? READ_BUFFER_BYTES_DEFAULT;
    if (!(this.#readBufferBytes >= 1024)) {
      throw new RangeError(`readBufferBytes must be at least 1024, got ${this.#readBufferBytes}`);
    }
  }

  /** Listens on `addr` (port 0: any free port). */
  async listen(addr: Address): Promise<FrameListener> {
    let listener: Deno.Listener;
    if (this.#tls !== undefined) {
      const cert = this.#tls.cert ?? await readPem(this.#tls.certFile, "certFile");
      const key = this.#tls.key ?? await readPem(this.#tls.keyFile, "keyFile");
      listener = Deno.listenTls({ hostname: addr.hostname, port: addr.port, cert, key });
    } else {
      listener = Deno.listen({ hostname: addr.hostname, port: addr.port, transport: "tcp" });
    }
    return new TcpListener(listener, this.#readBufferBytes);
  }

  /** Connects to `addr`. */
  async connect(addr: Address, options: ConnectOptions = {}): Promise<FrameConnection> {
    options.signal?.throwIfAborted();
    const pending: Promise<Deno.Conn> = this.#tls !== undefined
      ? Deno.connectTls({
        hostname: addr.hostname,
        port: addr.port,
        ...(this.#tls.caCerts ? { caCerts: this.#tls.caCerts } : {}),
      })
      : Deno.connect({ hostname: addr.hostname, port: addr.port, transport: "tcp" });
    const conn = await abortable(pending, options.signal, (c) => c.close()).catch((e) =>
      Promise.reject(namedConnectError(e, addr))
    );
    if (this.#tls !== undefined) {
      try {
        await abortable((conn as Deno.TlsConn).handshake(), options.signal);
      } catch (e) {
        try {
          conn.close();
        } catch { /* already closed */ }
        // A plain murmur port reads the TLS hello as an oversized frame and closes.
        if (e instanceof Deno.errors.InvalidData || e instanceof Deno.errors.UnexpectedEof) {
          throw new HandshakeError(
            `${addr.hostname}:${addr.port} did not answer TLS (is it a plain port?): ${e.message}`,
            { code: "protocol", cause: e },
          );
        }
        throw e;
      }
    }
    return new TcpFrameConnection(conn, addr, this.#readBufferBytes);
  }
}

async function readPem(path: string | undefined, what: string): Promise<string> {
  if (path === undefined) throw new TypeError(`tls.${what} (or its inline form) is required`);
  return await Deno.readTextFile(path);
}

/** Awaits `p` unless `signal` aborts first; a late result is disposed of. */
function abortable<T>(
  p: Promise<T>,
  signal: AbortSignal | undefined,
  dispose?: (value: T) => void,
): Promise<T> {
  if (signal === undefined) return p;
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    p.then((v) => {
      signal.removeEventListener("abort", onAbort);
      if (signal.aborted) dispose?.(v);
      else resolve(v);
    }, (e) => {
      signal.removeEventListener("abort", onAbort);
      reject(e);
    });
  });
}

class TcpListener implements FrameListener {
  readonly addr: Address;
  readonly #listener: Deno.Listener;
  readonly #readBufferBytes: number;
  #closed = false;

  constructor(listener: Deno.Listener, readBufferBytes: number) {
    this.#listener = listener;
    this.#readBufferBytes = readBufferBytes;
    const a = listener.addr as Deno.NetAddr;
    this.addr = { hostname: a.hostname, port: a.port };
  }

  async accept(): Promise<FrameConnection | null> {
    if (this.#closed) return null;
    try {
      const conn = await this.#listener.accept();
      const r = conn.remoteAddr as Deno.NetAddr;
      return new TcpFrameConnection(
        conn,
        { hostname: r.hostname, port: r.port },
        this.#readBufferBytes,
      );
    } catch (e) {
      if (this.#closed || e instanceof Deno.errors.BadResource) return null;
      throw e;
    }
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.#listener.close();
    } catch { /* already closed */ }
  }
}

/** Frames handed over by one `readMany()`. */
const READ_BATCH_MAX = 256;
/**
 * Received frames up to `POOLED_FRAME_BYTES_MAX` are copied into shared
 * `FRAME_POOL_BYTES` slabs rather than each into a buffer of its own (an
 * ArrayBuffer per frame costs ~0.5 µs here, more than decoding a small
 * message). A slab is filled with one copy of the bytes read so far (the frames
 * that follow go in with it), so most frames cost a view, not a copy. The
 * trade-off is Node's `Buffer` pool's: a byte string kept from a received
 * message keeps its slab (at most 8 KiB) alive.
 */
const FRAME_POOL_BYTES = 8192;
/**
 * Largest write buffer a connection keeps for its next batch. It is sized to
 * the batches the connection writes (a power of two from 1 KiB), so that a node
 * with thousands of quiet connections does not hold 64 KiB for each.
 */
const WRITE_BUFFER_BYTES_MAX = 64 * 1024;
const POOLED_FRAME_BYTES_MAX = 4096;
/**
 * A connection's read buffer starts this small and doubles, up to the
 * transport's `readBufferBytes`, each time a read fills it: a quiet connection
 * holds 4 KiB, a busy one soon reads 64 KiB at a time (a full mesh of 64
 * processes holds 126 connections in each).
 */
const READ_BUFFER_INITIAL_BYTES = 4096;

class TcpFrameConnection implements FrameConnection {
  readonly remoteAddr: Address;
  frameBytesMax: number = DEFAULT_FRAME_BYTES_MAX;
  readonly #conn: Deno.Conn;
  #buf: Uint8Array;
  #view: DataView;
  #start = 0;
  #end = 0;
  #closed = false;
  readonly #baseBytes: number;
  /** The read buffer's size when no large frame is in it: grows to `#baseBytes` under load. */
  #cap: number;
  #writeBuf: Uint8Array | undefined;
  // The slab: filled up to #poolAt; it holds a copy of #buf[#poolFrom, #poolTo)
  // at #poolFrom + #poolShift (read-buffer positions, valid until the bytes move).
  #pool = new Uint8Array(0);
  #poolAt = 0;
  #poolFrom = 0;
  #poolTo = 0;
  #poolShift = 0;

  constructor(conn: Deno.Conn, remoteAddr: Address, bufferBytes: number) {
    this.#conn = conn;
    this.remoteAddr = remoteAddr;
    this.#baseBytes = bufferBytes;
    this.#cap = Math.min(READ_BUFFER_INITIAL_BYTES, bufferBytes);
    this.#buf = new Uint8Array(this.#cap);
    this.#view = new DataView(this.#buf.buffer);
    try {
      (conn as Deno.TcpConn).setNoDelay?.(true);
    } catch { /* not a TCP socket */ }
  }

  async read(): Promise<Uint8Array | null> {
    for (;;) {
      const available = this.#end - this.#start;
      if (available >= FRAME_HEADER_BYTES) {
        const len = this.#view.getUint32(this.#start);
        if (len > this.frameBytesMax) throw new FrameTooLargeError(len, this.frameBytesMax);
        const need = FRAME_HEADER_BYTES + len;
        if (available >= need) {
          const body = this.#copy(this.#start + FRAME_HEADER_BYTES, len);
          this.#start += need;
          if (this.#start === this.#end) this.#rewind();
          return body;
        }
        this.#makeRoom(need);
      } else {
        this.#makeRoom(FRAME_HEADER_BYTES);
      }
      if (this.#closed) return null;
      let n: number | null;
      const room = this.#buf.length - this.#end;
      try {
        n = await this.#conn.read(this.#buf.subarray(this.#end));
      } catch (e) {
        if (this.#closed || isDisconnect(e)) return null;
        throw e;
      }
      if (n === null) {
        if (this.#end > this.#start) {
          throw new ProtocolError(`stream ended inside a frame (${this.#end - this.#start} bytes)`);
        }
        return null;
      }
      this.#end += n;
      if (n === room && this.#cap < this.#baseBytes) {
        // The read filled the buffer: more is waiting. Read more at a time from now on.
        this.#cap = Math.min(this.#cap * 2, this.#baseBytes);
        this.#resize(Math.max(this.#cap, this.#end - this.#start));
      }
    }
  }

  async readMany(): Promise<Uint8Array[] | null> {
    const first = await this.read();
    if (first === null) return null;
    const out = [first];
    while (out.length < READ_BATCH_MAX) {
      const next = this.#buffered();
      if (next === undefined) break;
      out.push(next);
    }
    return out;
  }

  /** A whole frame already in the buffer, else undefined (an oversized one is left to `read()`). */
  #buffered(): Uint8Array | undefined {
    const available = this.#end - this.#start;
    if (available < FRAME_HEADER_BYTES) return undefined;
    const len = this.#view.getUint32(this.#start);
    if (len > this.frameBytesMax || available < FRAME_HEADER_BYTES + len) return undefined;
    const body = this.#copy(this.#start + FRAME_HEADER_BYTES, len);
    this.#start += FRAME_HEADER_BYTES + len;
    if (this.#start === this.#end) this.#rewind();
    return body;
  }

  /**
   * A copy of `len` bytes of the read buffer from `at`, never a view of it:
   * decoded byte strings are views of their frame, so a frame must not share
   * the buffer that the next read overwrites. Small frames are views of a slab
   * that copied them, with the bytes after them, in one go.
   */
  #copy(at: number, len: number): Uint8Array {
    if (len > POOLED_FRAME_BYTES_MAX) return this.#buf.slice(at, at + len);
    if (at < this.#poolFrom || at + len > this.#poolTo) {
      // Copy this frame and what follows it, as much as the slab has room for.
      let room = this.#pool.length - this.#poolAt;
      if (room < len) {
        this.#pool = new Uint8Array(FRAME_POOL_BYTES);
        this.#poolAt = 0;
        room = FRAME_POOL_BYTES;
      }
      const to = Math.min(at + room, this.#end);
      this.#pool.set(this.#buf.subarray(at, to), this.#poolAt);
      this.#poolShift = this.#poolAt - at;
      this.#poolFrom = at;
      this.#poolTo = to;
      this.#poolAt += to - at;
    }
    const from = at + this.#poolShift;
    return this.#pool.subarray(from, from + len);
  }

  /** All read bytes are consumed: the next read goes to the start of the buffer. */
  #rewind(): void {
    this.#start =
      this.#end =
      this.#poolFrom =
      this.#poolTo =
        0;
  }

  /** Ensures the buffer holds `need` bytes from `#start` and has room to read into. */
  #makeRoom(need: number): void {
    // Read into a roomy tail: compact once the free tail is small rather than
    // issuing many tiny reads (a partial frame near the end of the buffer).
    const tail = this.#buf.length - this.#end;
    const roomy = tail >= Math.min(16 * 1024, this.#buf.length >> 2);
    if (this.#start + need <= this.#buf.length && roomy) return;
    const pending = this.#end - this.#start; // always < need here
    this.#poolFrom = this.#poolTo = 0; // the bytes move: the slab no longer mirrors them
    const size = Math.max(this.#cap, need);
    if (size !== this.#buf.length) {
      // Grow for a large frame, or shrink back to the base size after one.
      this.#resize(size);
      return;
    } else if (this.#start > 0) {
      this.#buf.copyWithin(0, this.#start, this.#end);
    } else return; // already compact: the frame fills the buffer up to its end
    this.#start = 0;
    this.#end = pending;
  }

  /** Moves the unread bytes to the start of a new buffer of `size` bytes. */
  #resize(size: number): void {
    const pending = this.#end - this.#start;
    const next = new Uint8Array(size);
    next.set(this.#buf.subarray(this.#start, this.#end));
    this.#buf = next;
    this.#view = new DataView(next.buffer);
    this.#poolFrom = this.#poolTo = 0; // the bytes moved: the slab no longer mirrors them
    this.#start = 0;
    this.#end = pending;
  }

  async write(frames: readonly Uint8Array[]): Promise<void> {
    if (frames.length === 0) return;
    const total = framedBytes(frames);
    // One buffer for all writes (a write is awaited before the next one starts),
    // unless writes overlap or the batch is larger than it: then a new one.
    let out = this.#writeBuf;
    if (out !== undefined && total <= out.length) {
      this.#writeBuf = undefined;
    } else {
      out = new Uint8Array(total <= WRITE_BUFFER_BYTES_MAX ? bufferSize(total) : total);
    }
    let data = framesInto(frames, out);
    try {
      while (data.length > 0) {
        const n = await this.#conn.write(data);
        data = data.subarray(n);
      }
    } finally {
      if (out.length <= WRITE_BUFFER_BYTES_MAX) this.#writeBuf = out;
    }
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.#conn.close();
    } catch { /* already closed */ }
  }
}

/** The power of two from 1 KiB that holds `bytes`. */
function bufferSize(bytes: number): number {
  let size = 1024;
  while (size < bytes) size *= 2;
  return size;
}

function isDisconnect(e: unknown): boolean {
  return e instanceof Deno.errors.BadResource || e instanceof Deno.errors.ConnectionReset ||
    e instanceof Deno.errors.BrokenPipe || e instanceof Deno.errors.Interrupted ||
    e instanceof Deno.errors.ConnectionAborted || e instanceof Deno.errors.NotConnected ||
    e instanceof Deno.errors.UnexpectedEof;
}
