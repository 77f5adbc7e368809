/**
 * The connection handshake: a mutual HMAC-SHA256 challenge-response over the
 * cluster cookie and both nonces.
 *
 * ```
 * client -> server  hello     { v, cluster, spec, channel, index, nonce }
 * server -> client  challenge { v, cluster, spec, nonce, mac: HMAC(cookie, "s" | transcript) }
 * client -> server  auth      { mac: HMAC(cookie, "c" | transcript) }
 * server -> client  welcome   {}   or   reject { reason }
 * ```
 *
 * The transcript binds the protocol version, the cluster, both names and
 * incarnations, the channel, the connection index and both nonces, so that no
 * answer can be replayed on another connection or reflected back. Nothing but
 * these four frames is read before the handshake succeeds, under a small frame
 * limit. HMAC is computed synchronously (node:crypto) so that simulations in
 * virtual time stay deterministic.
 *
 * @module
 */

import { createHmac, timingSafeEqual } from "node:crypto";
import { decodeValue, encodeValue } from "./codec.ts";
import { HandshakeError, ProtocolError } from "./errors.ts";
import { isName, type NodeSpec, validateSpec } from "./membership_state.ts";
import type { FrameConnection } from "./transport.ts";

/** The protocol version spoken by this release. */
export const PROTOCOL_VERSION = 1;
/** Frame limit in force until the handshake succeeds (bytes). */
export const DEFAULT_HANDSHAKE_FRAME_BYTES_MAX = 16 * 1024;
const NONCE_BYTES = 16;
const MAC_BYTES = 32;

/** What both sides need to run the handshake. */
export interface HandshakeConfig {
  /** Cluster name; peers of another cluster are refused. */
  cluster: string;
  /** The shared secret. */
  cookie: string;
  /** This node's spec. */
  spec: NodeSpec;
  /** Makes a fresh nonce. */
  nonce: () => Uint8Array;
  /** Frame limit until the handshake is done. */
  handshakeFrameBytesMax: number;
}

/** What an accepted incoming connection is. */
export interface Accepted {
  /** The client's spec. */
  spec: NodeSpec;
  /** The channel it will carry. */
  channel: string;
  /** The connection index within the channel. */
  index: number;
}

function mac(cookie: string, role: "s" | "c", transcript: unknown[]): Uint8Array {
  return createHmac("sha256", cookie).update(encodeValue([role, ...transcript])).digest();
}

function sameMac(a: unknown, b: Uint8Array): boolean {
  return a instanceof Uint8Array && a.length === MAC_BYTES && timingSafeEqual(a, b);
}

async function readMap(conn: FrameConnection, expect: string): Promise<Record<string, unknown>> {
  const frame = await conn.read();
  if (frame === null) throw new HandshakeError(`connection closed before ${expect}`);
  const v = decodeValue(frame);
  if (typeof v !== "object" || v === null || Array.isArray(v)) {
    throw new ProtocolError(`handshake: expected ${expect}, got a non-map`);
  }
  const m = v as Record<string, unknown>;
  if (m.t === "reject" && typeof m.reason === "string") {
    throw new HandshakeError(`refused by peer: ${m.reason.slice(0, 200)}`);
  }
  if (m.t !== expect) throw new ProtocolError(`handshake: expected ${expect}, got ${String(m.t)}`);
  return m;
}

function isNonce(v: unknown): v is Uint8Array {
  return v instanceof Uint8Array && v.length === NONCE_BYTES;
}

/**
 * Runs the client side on a fresh connection. Resolves with the server's spec.
 * `expectName`, when given, must be the server's name.
 */
export async function clientHandshake(
  conn: FrameConnection,
  cfg: HandshakeConfig,
  channel: string,
  index: number,
  expectName?: string,
): Promise<NodeSpec> {
  conn.frameBytesMax = cfg.handshakeFrameBytesMax;
  const nonceC = cfg.nonce();
  await conn.write([encodeValue({
    t: "hello",
    v: PROTOCOL_VERSION,
    cluster: cfg.cluster,
    spec: cfg.spec,
    channel,
    index,
    nonce: nonceC,
  })]);
  const ch = await readMap(conn, "challenge");
  if (ch.v !== PROTOCOL_VERSION) throw new HandshakeError(`peer speaks protocol ${String(ch.v)}`);
  if (ch.cluster !== cfg.cluster) throw new HandshakeError(`peer is in another cluster`);
  if (!isNonce(ch.nonce)) throw new ProtocolError("handshake: bad server nonce");
  const server = validateSpec(ch.spec);
  const transcript = [
    PROTOCOL_VERSION,
    cfg.cluster,
    cfg.spec.name,
    cfg.spec.incarnation,
    server.name,
    server.incarnation,
    channel,
    index,
    nonceC,
    ch.nonce,
  ];
  if (!sameMac(ch.mac, mac(cfg.cookie, "s", transcript))) {
    throw new HandshakeError("peer failed authentication (cookie mismatch)");
  }
  if (expectName !== undefined && server.name !== expectName) {
    throw new HandshakeError(`expected node "${expectName}" but "${server.name}" answered`);
  }
  await conn.write([encodeValue({ t: "auth", mac: mac(cfg.cookie, "c", transcript) })]);
  await readMap(conn, "welcome");
  return server;
}

/**
 * Runs the server side on an accepted connection. `admit` decides, once the
 * client is authenticated, whether to take it: it returns a refusal reason or
 * `undefined`.
 */
export async function serverHandshake(
  conn: FrameConnection,
  cfg: HandshakeConfig,
  admit: (client: Accepted) => string | undefined,
): Promise<Accepted> {
  conn.frameBytesMax = cfg.handshakeFrameBytesMax;
  const hello = await readMap(conn, "hello");
  const refuse = async (reason: string): Promise<never> => {
    try {
      await conn.write([encodeValue({ t: "reject", reason })]);
    } catch { /* the peer is gone anyway */ }
    throw new HandshakeError(reason);
  };
  if (hello.v !== PROTOCOL_VERSION) {
    return await refuse(`protocol ${String(hello.v)} is not ${PROTOCOL_VERSION}`);
  }
  if (hello.cluster !== cfg.cluster) return await refuse("wrong cluster");
  if (!isNonce(hello.nonce)) throw new ProtocolError("handshake: bad client nonce");
  if (!isName(hello.channel)) throw new ProtocolError("handshake: bad channel");
  const index = hello.index;
  if (typeof index !== "number" || !Number.isInteger(index) || index < 0 || index > 1024) {
    throw new ProtocolError("handshake: bad connection index");
  }
  const client = validateSpec(hello.spec);
  const nonceS = cfg.nonce();
  const transcript = [
    PROTOCOL_VERSION,
    cfg.cluster,
    client.name,
    client.incarnation,
    cfg.spec.name,
    cfg.spec.incarnation,
    hello.channel,
    index,
    hello.nonce,
    nonceS,
  ];
  await conn.write([encodeValue({
    t: "challenge",
    v: PROTOCOL_VERSION,
    cluster: cfg.cluster,
    spec: cfg.spec,
    nonce: nonceS,
    mac: mac(cfg.cookie, "s", transcript),
  })]);
  const auth = await readMap(conn, "auth");
  if (!sameMac(auth.mac, mac(cfg.cookie, "c", transcript))) {
    return await refuse("authentication failed (cookie mismatch)");
  }
  const accepted: Accepted = { spec: client, channel: hello.channel, index };
  const reason = admit(accepted);
  if (reason !== undefined) return await refuse(reason);
  await conn.write([encodeValue({ t: "welcome" })]);
  return accepted;
}
