// A linear pre-scan of CBOR bytes, run before cbor-x decodes them, so that
// decoding is bounded in time as well as size. Module-private.
//
// cbor-x honours every tag it knows: bignums (decoded in quadratic time),
// shared references (values with cycles), generic objects (constructors called
// with peer data), packed tables and record definitions. It also trusts length
// prefixes. The scan walks the item heads only (payload bytes are skipped, so
// it costs little next to decoding) and refuses, before any of that work:
// - a tag outside the small set murmur's own encoder emits;
// - a big integer (tags 2 and 3) of more than `bigintBytesMax` bytes;
// - nesting deeper than `depthMax` (arrays, maps and tags);
// - a length or count that cannot fit in the bytes that remain;
// - indefinite lengths, unassigned simple values, reserved additional info;
// - trailing bytes after the value.

/** Tags murmur's encoder emits for plain data: dates, big integers, typed arrays, sets and maps. */
function tagAllowed(tag: number): boolean {
  return tag === 1 || tag === 2 || tag === 3 || tag === 258 || tag === 259 ||
    (tag >= 64 && tag <= 87);
}

/** Returns why `bytes` is not acceptable CBOR, or undefined when it is. */
export function scanCbor(
  bytes: Uint8Array,
  depthMax: number,
  bigintBytesMax: number,
): string | undefined {
  const n = bytes.length;
  let pos = 0;
  // Items still to read at each open level; `remaining` is the innermost.
  const stack: number[] = [];
  let remaining = 1;
  while (true) {
    if (remaining === 0) {
      if (stack.length === 0) break;
      remaining = stack.pop()!;
      continue;
    }
    remaining--;
    if (pos >= n) return "truncated CBOR";
    const ib = bytes[pos++]!;
    const major = ib >> 5;
    const ai = ib & 31;
    let arg: number;
    if (ai < 24) arg = ai;
    else if (ai === 24) {
      if (pos + 1 > n) return "truncated CBOR";
      arg = bytes[pos]!;
      pos += 1;
    } else if (ai === 25) {
      if (pos + 2 > n) return "truncated CBOR";
      arg = (bytes[pos]! << 8) | bytes[pos + 1]!;
      pos += 2;
    } else if (ai === 26) {
      if (pos + 4 > n) return "truncated CBOR";
      arg = ((bytes[pos]! << 24) >>> 0) + (bytes[pos + 1]! << 16) + (bytes[pos + 2]! << 8) +
        bytes[pos + 3]!;
      pos += 4;
    } else if (ai === 27) {
      if (pos + 8 > n) return "truncated CBOR";
      // Only compared with byte counts: the high word decides whether it can fit.
      const hi = ((bytes[pos]! << 24) >>> 0) + (bytes[pos + 1]! << 16) + (bytes[pos + 2]! << 8) +
        bytes[pos + 3]!;
      const lo = ((bytes[pos + 4]! << 24) >>> 0) + (bytes[pos + 5]! << 16) +
        (bytes[pos + 6]! << 8) + bytes[pos + 7]!;
      arg = hi * 4294967296 + lo;
      pos += 8;
    } else if (ai === 31) {
      return "indefinite-length CBOR items are not accepted";
    } else {
      return `reserved CBOR additional info ${ai}`;
    }
    switch (major) {
      case 0:
      case 1:
        break;
      case 2:
      case 3:
        if (arg > n - pos) return "CBOR string longer than the frame";
        pos += arg;
        break;
      case 4:
      case 5: {
        const items = major === 5 ? arg * 2 : arg;
        if (items > n - pos) return "CBOR count larger than the frame can hold";
        if (items > 0) {
          if (stack.length + 1 > depthMax) return `CBOR nested deeper than ${depthMax} levels`;
          stack.push(remaining);
          remaining = items;
        }
        break;
      }
      case 6: {
        if (!tagAllowed(arg)) return `CBOR tag ${arg} is not accepted`;
        if (arg === 2 || arg === 3) {
          // A big integer: the content must be a byte string of bounded length.
          if (pos >= n) return "truncated CBOR";
          const head = bytes[pos]!;
          if (head >> 5 !== 2) return "CBOR big integer without a byte string";
          const a = head & 31;
          const len = a < 24
            ? a
            : a === 24 && pos + 1 < n
            ? bytes[pos + 1]!
            : a === 25 && pos + 2 < n
            ? (bytes[pos + 1]! << 8) | bytes[pos + 2]!
            : Infinity;
          if (len > bigintBytesMax) {
            return `CBOR big integer of more than ${bigintBytesMax} bytes`;
          }
        }
        if (stack.length + 1 > depthMax) return `CBOR nested deeper than ${depthMax} levels`;
        stack.push(remaining);
        remaining = 1;
        break;
      }
      default: // 7: simple values and floats
        if (ai === 24 || (ai < 20)) return `CBOR simple value ${arg} is not accepted`;
        break;
    }
  }
  if (pos !== n) return `${n - pos} trailing bytes after the CBOR value`;
  return undefined;
}
