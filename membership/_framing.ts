// Length-prefixed framing for byte-stream transports. Module-private.

/** Length of the big-endian length prefix before every frame body. */
export const FRAME_HEADER_BYTES = 4;
const HEADER = FRAME_HEADER_BYTES;

/** The bytes `encodeFrames(frames)` takes. */
export function framedBytes(frames: readonly Uint8Array[]): number {
  let total = 0;
  for (const f of frames) total += HEADER + f.length;
  return total;
}

/** Writes `encodeFrames(frames)` at the start of `out` (which has room); returns that part of it. */
export function framesInto(frames: readonly Uint8Array[], out: Uint8Array): Uint8Array {
  let at = 0;
  for (const f of frames) {
    const len = f.length;
    out[at] = len >>> 24;
    out[at + 1] = (len >>> 16) & 255;
    out[at + 2] = (len >>> 8) & 255;
    out[at + 3] = len & 255;
    out.set(f, at + HEADER);
    at += HEADER + len;
  }
  return out.subarray(0, at);
}
