/**
 * The base errors every murmur module shares: {@linkcode MurmurError}, the
 * class of every named domain error, and {@linkcode ProtocolError}, input
 * from another process (a peer, a storage) that breaks the protocol. Bad
 * arguments throw `TypeError` or `RangeError`.
 *
 * @module
 */

/**
 * Base class of every murmur domain error.
 *
 * @example
 * ```ts
 * import { MurmurError, NodeDownError } from "@murmur/murmur";
 * console.log(new NodeDownError("b") instanceof MurmurError); // true
 * ```
 */
export class MurmurError extends Error {
  /** Creates the error. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
  }
}

/**
 * A peer sent bytes that are not a valid frame or message: malformed CBOR, or a
 * well-formed value of the wrong shape. The connection is closed.
 *
 * @example
 * ```ts
 * import { ProtocolError } from "@murmur/murmur";
 * console.log(new ProtocolError("bad tag").name); // ProtocolError
 * ```
 */
export class ProtocolError extends MurmurError {}
