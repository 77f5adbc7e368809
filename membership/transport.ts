/**
 * The transport contract: framed, ordered, reliable byte connections between
 * nodes. {@linkcode TcpTransport} and {@linkcode MemoryTransport} implement it;
 * {@linkcode testTransport} is the conformance suite both pass.
 *
 * @module
 */

import { framedBytes, framesInto } from "./_framing.ts";

/** A host and port. Port 0 asks the transport for any free port. */
export interface Address {
  /** Host name or IP literal, such as `"127.0.0.1"`. */
  hostname: string;
  /** TCP port (or the memory network's port). */
  port: number;
}

export { FRAME_HEADER_BYTES } from "./_framing.ts";

/** Default largest frame body in bytes (1 MiB). */
export const DEFAULT_FRAME_BYTES_MAX = 1024 * 1024;

/**
 * One connection carrying frames in both directions, in order.
 *
 * @example Echo one frame back
 * ```ts
 * import { MemoryNetwork } from "@murmur/murmur/testing";
 * const net = new MemoryNetwork();
 * const t = net.transport("10.0.0.1");
 * const listener = await t.listen({ hostname: "10.0.0.1", port: 1 });
 * const client = await t.connect(listener.addr);
 * const server = (await listener.accept())!;
 * await client.write([new Uint8Array([1, 2, 3])]);
 * console.log(await server.read()); // Uint8Array [1, 2, 3]
 * client.close(); server.close(); listener.close();
 * ```
 */
export interface FrameConnection {
  /** The address of the other end, as the transport knows it. */
  readonly remoteAddr: Address;
  /**
   * The largest frame body `read()` accepts, checked from the length prefix
   * before anything is allocated. May be raised or lowered at any time.
   */
  frameBytesMax: number;
  /**
   * The next whole frame body, or `null` at the end of the stream.
   * Rejects with `FrameTooLargeError` when a length prefix is over the limit and
   * with `ProtocolError` when the stream ends inside a frame. The bytes are the
   * reader's own: later reads do not overwrite them and the writer's buffers
   * are not shared (a node keeps views of received frames and may change one
   * to send it on).
   */
  read(): Promise<Uint8Array | null>;
  /**
   * Optional, for speed: the next frame bodies, every whole frame already
   * buffered (at least one, at most a few hundred), or `null` at the end of
   * the stream; the same errors as `read()`. A node reads in batches when the
   * transport has it (one wake-up, one clock reading per batch).
   */
  readMany?(): Promise<Uint8Array[] | null>;
  /**
   * Writes the frames in order. Resolves once they are handed on (to the OS for
   * TCP); stays pending while the other side does not read (backpressure).
   * Callers await one write before starting the next.
   */
  write(frames: readonly Uint8Array[]): Promise<void>;
  /** Closes both directions. Idempotent. Pending reads resolve `null`. */
  close(): void;
}

/**
 * Accepts incoming connections.
 *
 * @example
 * ```ts
 * import { MemoryNetwork } from "@murmur/murmur/testing";
 * const t = new MemoryNetwork().transport("h");
 * const l = await t.listen({ hostname: "h", port: 0 });
 * console.log(l.addr.port > 0);
 * l.close();
 * ```
 */
export interface FrameListener {
  /** The address actually bound (port 0 replaced by the chosen port). */
  readonly addr: Address;
  /** The next connection, or `null` once the listener is closed. */
  accept(): Promise<FrameConnection | null>;
  /** Stops listening. Idempotent; a pending `accept()` resolves `null`. */
  close(): void;
}

/**
 * A way to open framed connections between nodes.
 *
 * @example
 * ```ts
 * import { type Transport, TcpTransport } from "@murmur/murmur/membership";
 * const t: Transport = new TcpTransport();
 * const l = await t.listen({ hostname: "127.0.0.1", port: 0 });
 * l.close();
 * ```
 */
export interface Transport {
  /** Starts listening on `addr`. */
  listen(addr: Address): Promise<FrameListener>;
  /** Opens a connection to `addr`; rejects if nobody listens there. */
  connect(addr: Address, options?: ConnectOptions): Promise<FrameConnection>;
}

/** Options of {@linkcode Transport.connect}. */
export interface ConnectOptions {
  /** Aborts the attempt. */
  signal?: AbortSignal;
}

/**
 * Parses `"host:port"` (IPv6 as `"[::1]:7000"`).
 *
 * @example
 * ```ts
 * import { parseAddress } from "@murmur/murmur/membership";
 * console.log(parseAddress("127.0.0.1:7000")); // { hostname: "127.0.0.1", port: 7000 }
 * ```
 */
export function parseAddress(text: string): Address {
  if (typeof text !== "string") throw new TypeError(`address must be a string, got ${typeof text}`);
  const m = /^(?:\[([^\]]+)\]|([^:\s]+)):(\d{1,5})$/.exec(text.trim());
  if (m === null) throw new TypeError(`address must look like "host:port", got "${text}"`);
  const port = Number(m[3]);
  if (port > 65535) throw new RangeError(`port must be at most 65535, got ${port}`);
  return { hostname: (m[1] ?? m[2])!, port };
}

/**
 * Formats an address as `"host:port"`.
 *
 * @example
 * ```ts
 * import { formatAddress } from "@murmur/murmur/membership";
 * console.log(formatAddress({ hostname: "::1", port: 1 })); // [::1]:1
 * ```
 */
export function formatAddress(addr: Address): string {
  return addr.hostname.includes(":")
    ? `[${addr.hostname}]:${addr.port}`
    : `${addr.hostname}:${addr.port}`;
}

/**
 * Frames bodies for a byte stream: each gets a 4-byte big-endian length prefix,
 * all in one buffer so that a batch costs one write.
 *
 * @example
 * ```ts
 * import { encodeFrames } from "@murmur/murmur/membership";
 * console.log(encodeFrames([new Uint8Array([9])])); // Uint8Array [0, 0, 0, 1, 9]
 * ```
 */
export function encodeFrames(frames: readonly Uint8Array[]): Uint8Array {
  return framesInto(frames, new Uint8Array(framedBytes(frames)));
}
