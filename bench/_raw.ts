// Honest baselines: the same work as murmur, written straight on `Deno.Conn`
// the way a performance engineer would, with nothing of murmur in the path.
//
// encodeAndWrite: each message is encoded as `[1, endpoint, payload]` (the
//   shape of a murmur `send`) with the fastest CBOR encoder in this runtime
//   for these bytes: murmur's own (base/_cbor_encode.ts, a pure function that
//   writes cbor-x's bytes 1.5-3x faster than cbor-x's `encode`, measured in
//   bench/codec_bench.ts),
//   length-prefixed (4 bytes, big-endian) into one reusable 64 KiB buffer that
//   is written whenever it is full; the receiver reads 256 KiB at a time,
//   splits the frames in place and decodes each with the fastest decoder of
//   these bytes: murmur's own (base/_cbor_decode.ts; with its bounds checks it
//   decodes a 100 B send in 62 ns against cbor-x's 72, both in one process,
//   min of 15 rounds of 200,000), calling a sink.
//   This is the physical limit of "encode, frame, write, read, decode" in
//   this runtime.
// plainFraming: the same, with pre-encoded bodies (no encode, no decode):
//   the limit of framing and the socket alone.
// FrameWriter: the coalescing writer the broadcast baseline uses (the root
//   encodes each message once and appends it to every receiver's writer).
import { decodeCbor } from "../base/_cbor_decode.ts";
import { encodeCbor } from "../base/_cbor_encode.ts";

const WRITE_BYTES = 64 * 1024;
const READ_BYTES = 256 * 1024;

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  for (let off = 0; off < bytes.length;) off += await conn.write(bytes.subarray(off));
}

/**
 * Reads length-prefixed frames until `n` have arrived (or, for `Infinity`,
 * until the connection ends); `onFrame` gets each body, a view of the buffer.
 */
export async function readFrames(
  conn: Deno.Conn,
  n: number,
  onFrame: (body: Uint8Array) => void,
): Promise<void> {
  let buf = new Uint8Array(READ_BYTES);
  let start = 0, end = 0, got = 0;
  while (got < n) {
    if (end === buf.length) {
      // Move the partial frame to the front (or grow for a frame larger than the buffer).
      const need = end - start;
      const next = need * 2 > buf.length ? new Uint8Array(buf.length * 2) : buf;
      next.set(buf.subarray(start, end), 0);
      buf = next;
      start = 0;
      end = need;
    }
    const r = await conn.read(buf.subarray(end)).catch(() => null);
    if (r === null) {
      if (n === Infinity) return;
      throw new Error(`connection closed after ${got} of ${n} frames`);
    }
    end += r;
    while (end - start >= 4) {
      const len = ((buf[start]! << 24) | (buf[start + 1]! << 16) | (buf[start + 2]! << 8) |
        buf[start + 3]!) >>> 0;
      if (end - start - 4 < len) break;
      onFrame(buf.subarray(start + 4, start + 4 + len));
      start += 4 + len;
      got++;
    }
    if (start === end) start = end = 0;
  }
}

/** A connected loopback pair with Nagle off: [client, server, listener]. */
export async function connectedPair(): Promise<[Deno.Conn, Deno.Conn, Deno.TcpListener]> {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const [client, server] = await Promise.all([
    Deno.connect({ hostname: "127.0.0.1", port: (l.addr as Deno.NetAddr).port }),
    l.accept(),
  ]);
  client.setNoDelay(true);
  server.setNoDelay(true);
  return [client, server, l];
}

/** Writes frames from `next()` into 64 KiB buffers; `next` returns the body of message i. */
async function writeFrames(conn: Deno.Conn, n: number, body: (i: number) => Uint8Array) {
  const out = new Uint8Array(WRITE_BYTES);
  let at = 0;
  for (let i = 0; i < n; i++) {
    const b = body(i);
    if (at + 4 + b.length > out.length) {
      await writeAll(conn, out.subarray(0, at));
      at = 0;
    }
    out[at] = b.length >>> 24;
    out[at + 1] = (b.length >>> 16) & 255;
    out[at + 2] = (b.length >>> 8) & 255;
    out[at + 3] = b.length & 255;
    out.set(b, at + 4);
    at += 4 + b.length;
  }
  if (at > 0) await writeAll(conn, out.subarray(0, at));
}

async function run(
  n: number,
  body: (i: number) => Uint8Array,
  onFrame: (b: Uint8Array) => void,
): Promise<number> {
  const [client, server, l] = await connectedPair();
  try {
    const start = performance.now();
    const reader = readFrames(server, n, onFrame);
    await writeFrames(client, n, body);
    await reader;
    return n / ((performance.now() - start) / 1000);
  } finally {
    client.close();
    server.close();
    l.close();
  }
}

/**
 * Messages per second for `n` messages `[1, endpoint, payload]`: encoded with
 * the fastest encoder one by one (decoded with the fastest decoder), framed into 64 KiB writes, read and decoded one by one.
 */
export function encodeAndWrite(n: number, endpoint: string, payload: unknown): Promise<number> {
  let sink = 0;
  return run(n, () => cborEncode([1, endpoint, payload]), (b) => {
    const m = cborDecode(b) as unknown[];
    if (m[1] === endpoint) sink++;
  }).finally(() => {
    if (sink !== n) throw new Error(`baseline decoded ${sink} of ${n}`);
  });
}

/** Messages per second for `n` pre-encoded bodies of `bytes` bytes: framing and the socket alone. */
export function plainFraming(n: number, bytes: number): Promise<number> {
  const body = new Uint8Array(bytes).fill(7);
  return run(n, () => body, () => {});
}

/**
 * Frames appended between writes go out together: bodies are length-prefixed
 * into 64 KiB buffers, and one write loop per connection writes whatever
 * accumulated while the previous write was in flight (what a link should do).
 */
export class FrameWriter {
  #buf: Uint8Array = new Uint8Array(WRITE_BYTES);
  #at = 0;
  readonly #full: Uint8Array[] = [];
  readonly #spare: Uint8Array[] = [];
  #loop: Promise<void> | undefined;

  constructor(private readonly conn: Deno.Conn) {}

  /** Queues one frame body; the write loop starts on the next microtask. */
  push(body: Uint8Array): void {
    if (this.#at + 4 + body.length > this.#buf.length) {
      this.#full.push(this.#buf.subarray(0, this.#at));
      this.#buf = (4 + body.length <= WRITE_BYTES ? this.#spare.pop() : undefined) ??
        new Uint8Array(Math.max(WRITE_BYTES, 4 + body.length));
      this.#at = 0;
    }
    const b = this.#buf, at = this.#at, len = body.length;
    b[at] = len >>> 24;
    b[at + 1] = (len >>> 16) & 255;
    b[at + 2] = (len >>> 8) & 255;
    b[at + 3] = len & 255;
    b.set(body, at + 4);
    this.#at = at + 4 + len;
    this.#loop ??= this.#run();
  }

  async #run(): Promise<void> {
    await Promise.resolve(); // let the current turn append more
    for (;;) {
      let chunk = this.#full.shift();
      if (chunk === undefined) {
        if (this.#at === 0) break;
        chunk = this.#buf.subarray(0, this.#at);
        // Double buffering: frames go on into the spare while this one is written.
        this.#buf = this.#spare.pop() ?? new Uint8Array(WRITE_BYTES);
        this.#at = 0;
      }
      await writeAll(this.conn, chunk);
      if (chunk.buffer.byteLength === WRITE_BYTES && this.#spare.length < 2) {
        this.#spare.push(new Uint8Array(chunk.buffer));
      }
    }
    this.#loop = undefined;
  }

  /** Resolves when everything pushed so far is written. */
  async drained(): Promise<void> {
    while (this.#loop !== undefined) await this.#loop;
  }
}

/** Encodes a value with the fastest encoder of murmur's bytes (see the module comment). */
export function cborEncode(value: unknown): Uint8Array {
  return encodeCbor(value, 100, 128);
}

/** Decodes a body with the fastest decoder of murmur's bytes (see the module comment). */
export function cborDecode(body: Uint8Array): unknown {
  return decodeCbor(body, 100, 128);
}
