// What answered a dial that does not speak murmur. The first four bytes a
// peer sends are read as a frame length; a length past the handshake's limit
// is most often another protocol's first bytes: "HTTP" (a web server), a TLS
// record (a TLS port dialed in plain), or other printable text ("SSH-").
// Module-private.

import { FrameTooLargeError, HandshakeError } from "./errors.ts";
import type { Address } from "./transport.ts";

/**
 * `e` named for what answered at `addr` when it is a frame length that spells
 * another protocol; otherwise `e` unchanged.
 */
export function namedForeign(e: unknown, addr: string): unknown {
  if (!(e instanceof FrameTooLargeError)) return e;
  const n = e.bytes;
  if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) return e;
  const b = [n >>> 24, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff];
  let what: string | undefined;
  if (n === 0x48545450) what = "HTTP, not murmur";
  else if (b[0]! >= 0x14 && b[0]! <= 0x17 && b[1] === 0x03 && b[2]! <= 0x04) {
    what = "TLS, not plain murmur (is it a TLS port? start this node with tls)";
  } else if (b.every((c) => c >= 0x20 && c < 0x7f)) {
    what = `"${String.fromCharCode(...b)}", not murmur`;
  }
  if (what === undefined) return e;
  return new HandshakeError(`${addr} answered ${what}`, { code: "protocol", cause: e });
}

/** A failed connect named by the address it was for (a DNS failure by the host name). */
export function namedConnectError(e: unknown, addr: Address): unknown {
  if (!(e instanceof Error)) return e;
  const where = `${addr.hostname}:${addr.port}`;
  if (
    /lookup address|name or service not known|nodename nor servname|no address/i.test(e.message)
  ) {
    return new Error(`cannot resolve "${addr.hostname}" (DNS): ${e.message}`, { cause: e });
  }
  if (e instanceof Deno.errors.ConnectionRefused) {
    return new Deno.errors.ConnectionRefused(`${where}: ${e.message}`, { cause: e });
  }
  if (e instanceof Deno.errors.TimedOut) {
    return new Deno.errors.TimedOut(`${where}: ${e.message}`, { cause: e });
  }
  return e;
}
