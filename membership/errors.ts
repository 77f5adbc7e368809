/**
 * The named errors of the membership layer. Bad arguments throw `TypeError` or
 * `RangeError`; domain failures that callers catch are the classes below, each
 * with a `cause` where there is one.
 *
 * @module
 */

import { MurmurError } from "../base/errors.ts";
import type { NodeSpec } from "./spec.ts";
import type { Address } from "./transport.ts";
import { issuesFromWire, ValidationError } from "../base/schema.ts";

/**
 * A frame was larger than the connection's limit (`frameBytesMax`, or the small
 * limit in force before the handshake).
 *
 * @example
 * ```ts
 * import { FrameTooLargeError } from "@murmur/murmur/membership";
 * const e = new FrameTooLargeError(2_000_000, 1_048_576);
 * console.log(e.message);
 * ```
 */
export class FrameTooLargeError extends MurmurError {
  /** Size of the offending frame in bytes. */
  readonly bytes: number;
  /** The limit that was in force. */
  readonly limitBytes: number;
  /** Creates the error (`message`: what was too large, when the default does not say). */
  constructor(bytes: number, limitBytes: number, message?: string) {
    super(message ?? `frame of ${bytes} bytes exceeds the limit of ${limitBytes} bytes`);
    this.bytes = bytes;
    this.limitBytes = limitBytes;
  }
}

/**
 * Why a handshake was refused or failed:
 * - `auth`: wrong cookie; `cluster`: another cluster; `protocol`: another protocol version;
 * - `stale`: the peer knows this node's name at a higher (or equal, other-process)
 *   incarnation; `known` carries what it knows, and the node recovers by taking a higher one;
 * - `name-in-use`: another live process owns the name ({@linkcode NameConflictError});
 * - `mismatch`: another node than the expected one answered at that address;
 * - `full`: the peer's view is at `membersMax`; `left`: the peer left the cluster;
 *   `partitioned`: an injected partition; `timeout`: no handshake in time;
 *   `limit`: a connection limit of the peer (too many connections or handshakes).
 */
export type HandshakeCode =
  | "auth"
  | "cluster"
  | "protocol"
  | "stale"
  | "name-in-use"
  | "mismatch"
  | "full"
  | "left"
  | "partitioned"
  | "timeout"
  | "limit";

/** Options of {@linkcode HandshakeError}. */
export interface HandshakeErrorOptions extends ErrorOptions {
  /** Why (see {@linkcode HandshakeCode}). */
  code?: HandshakeCode;
  /** For `stale`: the spec the peer knows for this node's name. */
  known?: NodeSpec;
}

/**
 * The handshake failed: wrong cookie, other cluster, other protocol version,
 * a name in use, a stale incarnation, another node at the address, or a timeout.
 * `code` says which (undefined for a transport failure during the handshake).
 *
 * @example
 * ```ts
 * import { HandshakeError } from "@murmur/murmur/membership";
 * const e = new HandshakeError("authentication failed (cookie mismatch)", { code: "auth" });
 * console.log(e.code, e.message);
 * ```
 */
export class HandshakeError extends MurmurError {
  /** Why, when known. */
  readonly code: HandshakeCode | undefined;
  /** For `stale`: the spec the peer knows for this node's name. */
  readonly known: NodeSpec | undefined;
  /** Creates the error. */
  constructor(message: string, options: HandshakeErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = options.code;
    this.known = options.known;
  }
}

/**
 * Another live process owns this node name: its peers refuse a second one
 * (the live owner keeps its place). Start the second process under another
 * name, or stop the first.
 *
 * @example
 * ```ts
 * import { NameConflictError } from "@murmur/murmur/membership";
 * const e = new NameConflictError("x", [{ hostname: "127.0.0.1", port: 7000 }]);
 * console.log(e.code, e.message);
 * ```
 */
export class NameConflictError extends HandshakeError {
  /** The contested name. */
  readonly node: string;
  /** Where the live owner listens. */
  readonly owner: readonly Address[];
  /** Creates the error. */
  constructor(node: string, owner: readonly Address[], detail?: string) {
    const where = owner.map((a) => `${a.hostname}:${a.port}`).join(", ") || "an unknown address";
    super(
      `node name "${node}" is in use by a live node at ${where}${detail ? ` (${detail})` : ""}`,
      { code: "name-in-use" },
    );
    this.node = node;
    this.owner = owner;
  }
}

/**
 * The named node is not reachable now: it is down, partitioned away, left, or
 * its connection was lost while a call or acknowledged send was waiting.
 *
 * @example
 * ```ts
 * import { NodeDownError } from "@murmur/murmur/membership";
 * const e = new NodeDownError("b");
 * console.log(e.node, e.message);
 * ```
 */
export class NodeDownError extends MurmurError {
  /** The node that could not be reached. */
  readonly node: string;
  /** Creates the error. */
  constructor(node: string, detail = "is down", options?: ErrorOptions) {
    super(`node "${node}" ${detail}`, options);
    this.node = node;
  }
}

/**
 * The name is not a member of the cluster as this node sees it.
 *
 * @example
 * ```ts
 * import { UnknownNodeError } from "@murmur/murmur/membership";
 * console.log(new UnknownNodeError("zz").message);
 * ```
 */
export class UnknownNodeError extends MurmurError {
  /** The unknown node name. */
  readonly node: string;
  /** Creates the error. */
  constructor(node: string) {
    super(`node "${node}" is not a member of this cluster`);
    this.node = node;
  }
}

/**
 * The target node has no endpoint registered under that name.
 *
 * @example
 * ```ts
 * import { UnknownEndpointError } from "@murmur/murmur/membership";
 * console.log(new UnknownEndpointError("b", "echo").message);
 * ```
 */
export class UnknownEndpointError extends MurmurError {
  /** The node that was asked. */
  readonly node: string;
  /** The endpoint name that was not found. */
  readonly endpoint: string;
  /** Creates the error. */
  constructor(node: string, endpoint: string) {
    super(`node "${node}" has no endpoint "${endpoint}"`);
    this.node = node;
    this.endpoint = endpoint;
  }
}

/**
 * The remote handler threw. `remoteName` and `remoteMessage` carry what the
 * remote error said; the remote stack is not sent.
 *
 * @example
 * ```ts
 * import { RemoteHandlerError } from "@murmur/murmur/membership";
 * const e = new RemoteHandlerError("b", "echo", "TypeError", "boom");
 * console.log(e.message);
 * ```
 */
export class RemoteHandlerError extends MurmurError {
  /** The node whose handler threw. */
  readonly node: string;
  /** The endpoint whose handler threw. */
  readonly endpoint: string;
  /** `name` of the remote error. */
  readonly remoteName: string;
  /** `message` of the remote error. */
  readonly remoteMessage: string;
  /** Creates the error. */
  constructor(node: string, endpoint: string, remoteName: string, remoteMessage: string) {
    super(`handler "${endpoint}" on node "${node}" threw ${remoteName}: ${remoteMessage}`);
    this.node = node;
    this.endpoint = endpoint;
    this.remoteName = remoteName;
    this.remoteMessage = remoteMessage;
  }
}

/**
 * No reply arrived within `timeoutMs`. The request may still have been handled.
 *
 * @example
 * ```ts
 * import { CallTimeoutError } from "@murmur/murmur/membership";
 * console.log(new CallTimeoutError("b", "echo", 5000).message);
 * ```
 */
export class CallTimeoutError extends MurmurError {
  /** The node that did not answer. */
  readonly node: string;
  /** The endpoint that was called. */
  readonly endpoint: string;
  /** The timeout that expired. */
  readonly timeoutMs: number;
  /** Creates the error. */
  constructor(node: string, endpoint: string, timeoutMs: number) {
    super(`call to "${endpoint}" on node "${node}" got no reply within ${timeoutMs} ms`);
    this.node = node;
    this.endpoint = endpoint;
    this.timeoutMs = timeoutMs;
  }
}

/**
 * An acknowledged send (`ack: true`) got no acknowledgement within its
 * `timeoutMs`. It may still have been delivered (once).
 *
 * @example
 * ```ts
 * import { AckTimeoutError } from "@murmur/murmur/membership";
 * console.log(new AckTimeoutError("b", "jobs", 30000).message);
 * ```
 */
export class AckTimeoutError extends MurmurError {
  /** The destination node. */
  readonly node: string;
  /** The endpoint. */
  readonly endpoint: string;
  /** The timeout that expired. */
  readonly timeoutMs: number;
  /** Creates the error. */
  constructor(node: string, endpoint: string, timeoutMs: number) {
    super(`send to "${endpoint}" on node "${node}" was not acknowledged within ${timeoutMs} ms`);
    this.node = node;
    this.endpoint = endpoint;
    this.timeoutMs = timeoutMs;
  }
}

/**
 * A send queue, or the bytes of a peer's unacknowledged sends, is past its hard
 * bound: the peer is not reading (or acknowledging) fast enough and too many
 * senders are already waiting. Acknowledged sends and calls reject with it; a
 * fire-and-forget send is dropped and counted instead.
 *
 * @example
 * ```ts
 * import { QueueFullError } from "@murmur/murmur/membership";
 * console.log(new QueueFullError("b", "default").message);
 * ```
 */
export class QueueFullError extends MurmurError {
  /** The destination node. */
  readonly node: string;
  /** The channel whose queue is full. */
  readonly channel: string;
  /** Creates the error. */
  constructor(node: string, channel: string) {
    super(`send queue to node "${node}" on channel "${channel}" is full`);
    this.node = node;
    this.channel = channel;
  }
}

/**
 * The node (or transport) was closed while the operation was pending or before
 * it began.
 *
 * @example
 * ```ts
 * import { ClosedError } from "@murmur/murmur/membership";
 * console.log(new ClosedError("node a is closed").message);
 * ```
 */
export class ClosedError extends MurmurError {}

/**
 * The error of a reply that says a handler failed (`[name, message]`, and the
 * issues of a message its schema refused): a `ValidationError` or a
 * `RemoteHandlerError`.
 */
export function handlerFailure(node: string, endpoint: string, value: unknown): Error {
  const [name, message, issues] = Array.isArray(value) ? value : [];
  const list = name === "ValidationError" ? issuesFromWire(issues) : undefined;
  if (list !== undefined) return new ValidationError(list, { node, endpoint });
  return new RemoteHandlerError(node, endpoint, String(name ?? "Error"), String(message ?? ""));
}
