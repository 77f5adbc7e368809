// Forwarding a received eager push without encoding it again. Module-private.
//
// A push travels as the node frame `[1, endpoint, [0, handler, id, payload,
// root, round]]`: root and round are the last two items of the frame, so their
// encodings end its bytes. A relay pushes the same message with the round one
// higher: when the frame ends with the shortest encodings of `root` (an ASCII
// name, as cbor-x writes it) and of `round`, and `round + 1` takes as many
// bytes as `round`, the round is rewritten in place. Anything else (a round of
// 23, 255 or 65,535, a non-ASCII root, or a peer that wrote either item some
// other way) is left to the caller, which encodes the message as before.
//
// The frame has been checked before (CBOR scan with no trailing bytes, decoded,
// shape checked), and only the round's own bytes change: decoded byte strings
// are views of the frame, but none of them covers the last item.

/** Width of the shortest CBOR encoding of unsigned integer `n` (< 2^32), else 0. */
function uintWidth(n: number): number {
  return n < 24 ? 1 : n < 0x100 ? 2 : n < 0x10000 ? 3 : n < 0x100000000 ? 5 : 0;
}

/** Whether `frame` holds the shortest encoding of `n` (width `w`) at `at`. */
function isUint(frame: Uint8Array, at: number, n: number, w: number): boolean {
  switch (w) {
    case 1:
      return frame[at] === n;
    case 2:
      return frame[at] === 0x18 && frame[at + 1] === n;
    case 3:
      return frame[at] === 0x19 && frame[at + 1] === n >>> 8 && frame[at + 2] === (n & 0xff);
    default:
      return frame[at] === 0x1a && frame[at + 1] === n >>> 24 &&
        frame[at + 2] === ((n >>> 16) & 0xff) && frame[at + 3] === ((n >>> 8) & 0xff) &&
        frame[at + 4] === (n & 0xff);
  }
}

/** Writes the shortest encoding of `n` (width `w`) at `at`. */
function writeUint(frame: Uint8Array, at: number, n: number, w: number): void {
  switch (w) {
    case 1:
      frame[at] = n;
      return;
    case 2:
      frame[at + 1] = n;
      return;
    case 3:
      frame[at + 1] = n >>> 8;
      frame[at + 2] = n & 0xff;
      return;
    default:
      frame[at + 1] = n >>> 24;
      frame[at + 2] = (n >>> 16) & 0xff;
      frame[at + 3] = (n >>> 8) & 0xff;
      frame[at + 4] = n & 0xff;
  }
}

/** Whether `frame` holds the shortest encoding of ASCII text `s` ending at `end`. */
function endsWithText(frame: Uint8Array, end: number, s: string): boolean {
  const len = s.length;
  const head = len < 24 ? 1 : 2;
  const at = end - len - head;
  if (at < 0 || len > 0xff) return false;
  if (head === 1 ? frame[at] !== 0x60 + len : frame[at] !== 0x78 || frame[at + 1] !== len) {
    return false;
  }
  for (let i = 0, j = at + head; i < len; i++, j++) {
    const c = s.charCodeAt(i);
    if (c >= 0x80 || frame[j] !== c) return false;
  }
  return true;
}

/**
 * Rewrites the round that ends a push's `frame` to `round + 1`, in place.
 * Returns false, changing nothing, when that cannot be done in place (see above).
 */
export function bumpRound(frame: Uint8Array, root: string, round: number): boolean {
  const w = uintWidth(round);
  if (w === 0 || uintWidth(round + 1) !== w) return false;
  const at = frame.length - w;
  if (at < 0 || !isUint(frame, at, round, w) || !endsWithText(frame, at, root)) return false;
  writeUint(frame, at, round + 1, w);
  return true;
}
