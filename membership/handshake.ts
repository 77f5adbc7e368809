/**
 * The connection handshake: a mutual HMAC-SHA256 challenge-response over the
 * cluster cookie and both nonces.
 *
 * ```
 * client -> server  hello     { v, cluster, spec, channel, index, nonce, instance }
 * server -> client  challenge { v, cluster, spec, nonce, instance, mac: HMAC(cookie, "s" | transcript) }
 * client -> server  auth      { mac: HMAC(cookie, "c" | transcript) }
 * server -> client  welcome   {}   or   reject { code, reason, known?, owner?, mac? }
 * ```
 *
 * The transcript binds the protocol version, the cluster, both names,
 * incarnations and process instances, the channel, the connection index and
 * both nonces, so that no answer can be replayed on another connection or
 * reflected back. A refusal decided after the client authenticated (a stale
 * incarnation, a name in use, a full view) carries its own MAC over the
 * transcript, so the client can act on it (take a higher incarnation, stop
 * retrying); earlier refusals (wrong cookie, cluster or protocol) are
 * informational. Nothing but these frames is read before the handshake
 * succeeds, under a small frame limit. HMAC is computed synchronously (in
 * TypeScript, not WebCrypto) so that simulations in virtual time stay
 * deterministic.
 *
 * @module
 */

import { decodeValue, encodeValue } from "../base/codec.ts";
import { equalBytes, hmacSha256 } from "./_hmac.ts";
import { type HandshakeCode, HandshakeError, NameConflictError } from "./errors.ts";
import { ProtocolError } from "../base/errors.ts";
import { isName, type NodeSpec, validateSpec } from "./spec.ts";
import type { Address, FrameConnection } from "./transport.ts";

/**
 * The protocol version spoken by this release (3: Plumtree pushes carry the
 * round last and IHAVE ids and rounds side by side).
 */
export const PROTOCOL_VERSION = 3;
/** Frame limit in force until the handshake succeeds (bytes). */
export const DEFAULT_HANDSHAKE_FRAME_BYTES_MAX = 16 * 1024;
/** Bytes of a process instance id. */
export const INSTANCE_BYTES = 16;
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
  /** This process's instance id ({@linkcode INSTANCE_BYTES} random bytes, fixed for the node's life). */
  instance?: Uint8Array;
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
  /** The client's process instance id. */
  instance: Uint8Array;
}

/** What the client learns of the server. */
export interface ServerHello {
  /** The server's spec. */
  spec: NodeSpec;
  /** The server's process instance id. */
  instance: Uint8Array;
}

/** A refusal decided by `admit`. */
export interface Refusal {
  /** Why, as a code. */
  code: HandshakeCode;
  /** Why, in words. */
  reason: string;
  /** For `stale`: the spec this node knows for the client's name. */
  known?: NodeSpec;
  /** For `name-in-use`: where the live owner listens. */
  owner?: readonly Address[];
}

/** Optional callbacks of {@linkcode serverHandshake}. */
export interface ServerHandshakeHooks {
  /** Called once the hello frame has arrived (the connection made progress). */
  onHello?(): void;
}

const ZERO_INSTANCE = new Uint8Array(INSTANCE_BYTES);

const utf8 = new TextEncoder();

function mac(cookie: string, role: "s" | "c" | "r", transcript: unknown[]): Uint8Array {
  return hmacSha256(utf8.encode(cookie), encodeValue([role, ...transcript]));
}

function sameMac(a: unknown, b: Uint8Array): boolean {
  return a instanceof Uint8Array && a.length === MAC_BYTES && equalBytes(a, b);
}

const CODES: readonly HandshakeCode[] = [
  "auth",
  "cluster",
  "protocol",
  "stale",
  "name-in-use",
  "mismatch",
  "full",
  "left",
  "partitioned",
  "timeout",
  "limit",
];

function refusalError(
  m: Record<string, unknown>,
  transcript: unknown[] | undefined,
  cfg: HandshakeConfig,
): HandshakeError {
  const reason = String(m.reason).slice(0, 300);
  const code = CODES.includes(m.code as HandshakeCode) ? m.code as HandshakeCode : undefined;
  const authentic = transcript !== undefined &&
    sameMac(m.mac, mac(cfg.cookie, "r", [...transcript, m.code, m.reason, m.known ?? null]));
  if (authentic && code === "name-in-use") {
    const owner = Array.isArray(m.owner)
      ? (m.owner as unknown[]).filter((a): a is Address =>
        typeof a === "object" && a !== null && typeof (a as Address).hostname === "string" &&
        typeof (a as Address).port === "number"
      ).slice(0, 16)
      : [];
    return new NameConflictError(cfg.spec.name, owner, reason);
  }
  if (authentic && code === "stale") {
    let known: NodeSpec | undefined;
    try {
      known = m.known === undefined ? undefined : validateSpec(m.known);
    } catch { /* a malformed spec: no incarnation to learn */ }
    return new HandshakeError(`refused by peer: ${reason}`, {
      code,
      ...(known ? { known } : {}),
    });
  }
  // Unauthenticated: informational only; a code that would make the client act is not trusted.
  const safe = code === "stale" || code === "name-in-use" ? undefined : code;
  return new HandshakeError(`refused by peer: ${reason}`, safe ? { code: safe } : {});
}

async function readMap(
  conn: FrameConnection,
  expect: string,
  cfg: HandshakeConfig,
  transcript?: unknown[],
): Promise<Record<string, unknown>> {
  const frame = await conn.read();
  if (frame === null) throw new HandshakeError(`connection closed before ${expect}`);
  const v = decodeValue(frame);
  if (typeof v !== "object" || v === null || Array.isArray(v)) {
    throw new ProtocolError(`handshake: expected ${expect}, got a non-map`);
  }
  const m = v as Record<string, unknown>;
  if (m.t === "reject" && typeof m.reason === "string") throw refusalError(m, transcript, cfg);
  if (m.t !== expect) throw new ProtocolError(`handshake: expected ${expect}, got ${String(m.t)}`);
  return m;
}

function isBytes(v: unknown, n: number): v is Uint8Array {
  return v instanceof Uint8Array && v.length === n;
}

/**
 * Runs the client side on a fresh connection. Resolves with the server's spec
 * and instance. `expectName`, when given, must be the server's name (else a
 * `HandshakeError` with code `mismatch`).
 */
export async function clientHandshake(
  conn: FrameConnection,
  cfg: HandshakeConfig,
  channel: string,
  index: number,
  expectName?: string,
): Promise<ServerHello> {
  conn.frameBytesMax = cfg.handshakeFrameBytesMax;
  const nonceC = cfg.nonce();
  const instanceC = cfg.instance ?? ZERO_INSTANCE;
  await conn.write([encodeValue({
    t: "hello",
    v: PROTOCOL_VERSION,
    cluster: cfg.cluster,
    spec: cfg.spec,
    channel,
    index,
    nonce: nonceC,
    instance: instanceC,
  })]);
  const ch = await readMap(conn, "challenge", cfg);
  if (ch.v !== PROTOCOL_VERSION) {
    throw new HandshakeError(`peer speaks protocol ${String(ch.v)}`, { code: "protocol" });
  }
  if (ch.cluster !== cfg.cluster) {
    throw new HandshakeError(`peer is in another cluster`, { code: "cluster" });
  }
  if (!isBytes(ch.nonce, NONCE_BYTES)) throw new ProtocolError("handshake: bad server nonce");
  if (!isBytes(ch.instance, INSTANCE_BYTES)) throw new ProtocolError("handshake: bad instance");
  const server = validateSpec(ch.spec);
  const transcript = [
    PROTOCOL_VERSION,
    cfg.cluster,
    cfg.spec.name,
    cfg.spec.incarnation,
    instanceC,
    server.name,
    server.incarnation,
    ch.instance,
    channel,
    index,
    nonceC,
    ch.nonce,
  ];
  if (!sameMac(ch.mac, mac(cfg.cookie, "s", transcript))) {
    // Say why before closing, so that the server can log it (it cannot tell otherwise).
    const reason = "authentication failed (cookie mismatch)";
    await conn.write([encodeValue({ t: "reject", code: "auth", reason })]).catch(() => {});
    throw new HandshakeError(`peer failed ${reason}`, { code: "auth" });
  }
  if (expectName !== undefined && server.name !== expectName) {
    throw new HandshakeError(`expected node "${expectName}" but "${server.name}" answered`, {
      code: "mismatch",
    });
  }
  await conn.write([encodeValue({ t: "auth", mac: mac(cfg.cookie, "c", transcript) })]);
  await readMap(conn, "welcome", cfg, transcript);
  return { spec: server, instance: ch.instance };
}

/**
 * Runs the server side on an accepted connection. `admit` decides, once the
 * client is authenticated, whether to take it: it returns a {@linkcode Refusal}
 * or `undefined`.
 */
export async function serverHandshake(
  conn: FrameConnection,
  cfg: HandshakeConfig,
  admit: (client: Accepted) => Refusal | undefined,
  hooks: ServerHandshakeHooks = {},
): Promise<Accepted> {
  conn.frameBytesMax = cfg.handshakeFrameBytesMax;
  const hello = await readMap(conn, "hello", cfg);
  hooks.onHello?.();
  const refuse = async (r: Refusal, transcript?: unknown[]): Promise<never> => {
    const frame: Record<string, unknown> = { t: "reject", code: r.code, reason: r.reason };
    if (r.known !== undefined) frame.known = r.known;
    if (r.owner !== undefined) frame.owner = r.owner;
    if (transcript !== undefined) {
      frame.mac = mac(cfg.cookie, "r", [...transcript, r.code, r.reason, r.known ?? null]);
    }
    try {
      await conn.write([encodeValue(frame)]);
    } catch { /* the peer is gone anyway */ }
    throw new HandshakeError(r.reason, { code: r.code });
  };
  if (hello.v !== PROTOCOL_VERSION) {
    return await refuse({
      code: "protocol",
      reason: `protocol ${String(hello.v)} is not ${PROTOCOL_VERSION}`,
    });
  }
  if (hello.cluster !== cfg.cluster) {
    return await refuse({ code: "cluster", reason: "wrong cluster" });
  }
  if (!isBytes(hello.nonce, NONCE_BYTES)) throw new ProtocolError("handshake: bad client nonce");
  if (!isBytes(hello.instance, INSTANCE_BYTES)) throw new ProtocolError("handshake: bad instance");
  if (!isName(hello.channel)) throw new ProtocolError("handshake: bad channel");
  const index = hello.index;
  if (typeof index !== "number" || !Number.isInteger(index) || index < 0 || index > 1024) {
    throw new ProtocolError("handshake: bad connection index");
  }
  const client = validateSpec(hello.spec);
  const nonceS = cfg.nonce();
  const instanceS = cfg.instance ?? ZERO_INSTANCE;
  const transcript = [
    PROTOCOL_VERSION,
    cfg.cluster,
    client.name,
    client.incarnation,
    hello.instance,
    cfg.spec.name,
    cfg.spec.incarnation,
    instanceS,
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
    instance: instanceS,
    mac: mac(cfg.cookie, "s", transcript),
  })]);
  const auth = await readMap(conn, "auth", cfg);
  if (!sameMac(auth.mac, mac(cfg.cookie, "c", transcript))) {
    return await refuse({ code: "auth", reason: "authentication failed (cookie mismatch)" });
  }
  const accepted: Accepted = {
    spec: client,
    channel: hello.channel,
    index,
    instance: hello.instance,
  };
  const refusal = admit(accepted);
  if (refusal !== undefined) return await refuse(refusal, transcript);
  await conn.write([encodeValue({ t: "welcome" })]);
  return accepted;
}
