// Incoming connections: the accept loop, handshakes with a deadline and
// bounds in total and per remote address (the oldest that has not even sent
// its hello makes room), and the links of the connections taken.
// Module-private: Peers composes it.

import { FrameTooLargeError, HandshakeError } from "./errors.ts";
import { ProtocolError } from "../base/errors.ts";
import { type Accepted, serverHandshake } from "./handshake.ts";
import { formatAddress, type FrameConnection, type FrameListener } from "./transport.ts";
import { instanceHex, type PeerRegistry } from "./_peer.ts";

/** The longest pause of the accept loop after accepts that keep failing (out of descriptors). */
const ACCEPT_BACKOFF_MAX_MS = 1000;
/** At most one "accept failed" warning per this many ms. */
const ACCEPT_LOG_INTERVAL_MS = 5000;

interface Pending {
  readonly conn: FrameConnection;
  readonly host: string;
  /** When it was accepted. */
  readonly at: number;
  progressed: boolean;
  /** When its hello arrived (the challenge went out then). */
  helloAt: number;
}

/**
 * A handshake whose hello arrived but whose answer to the challenge has not
 * for this long may be closed to make room too: a real node answers within
 * a round trip, and a hello needs no cookie (slowloris past the hello).
 */
const CHALLENGE_GRACE_MS = 1000;

/** The incoming side of one node's connections. */
export class Acceptor {
  readonly #p: PeerRegistry;
  readonly #listener: FrameListener;
  readonly #pending = new Map<FrameConnection, Pending>();
  #evictLoggedAt = -Infinity;
  #evictSuppressed = 0;

  constructor(registry: PeerRegistry, listener: FrameListener) {
    this.#p = registry;
    this.#listener = listener;
  }

  /** Closes every pending handshake. */
  close(): void {
    for (const p of [...this.#pending.values()]) p.conn.close();
    this.#pending.clear();
  }

  async run(): Promise<void> {
    let failures = 0, suppressed = 0, lastLog = -Infinity;
    for (;;) {
      let conn: FrameConnection | null;
      try {
        conn = await this.#listener.accept();
        failures = 0;
      } catch (e) {
        if (this.#p.closed) return;
        // Out of descriptors (EMFILE, ENFILE) accept fails at once, again and again: back off
        // (doubling up to ACCEPT_BACKOFF_MAX_MS) and log once per ACCEPT_LOG_INTERVAL_MS.
        failures++;
        const { clock } = this.#p.cfg;
        const now = clock.now();
        if (now - lastLog >= ACCEPT_LOG_INTERVAL_MS) {
          const more = suppressed > 0 ? ` (${suppressed} more since the last report)` : "";
          this.#p.cfg.log({
            level: "warn",
            node: this.#p.cfg.name,
            msg: `accept failed${more}; backing off`,
            error: e,
          });
          lastLog = now;
          suppressed = 0;
        } else suppressed++;
        const wait = Math.min(ACCEPT_BACKOFF_MAX_MS, 5 * 2 ** Math.min(failures, 20));
        await new Promise<void>((r) => clock.setTimeout(r, wait));
        continue;
      }
      if (conn === null) return;
      if (this.#p.closed) {
        conn.close();
        return;
      }
      if (this.#p.links >= this.#p.cfg.connectionsMax) {
        this.#p.cfg.log({
          level: "warn",
          node: this.#p.cfg.name,
          msg: `connection from ${
            formatAddress(conn.remoteAddr)
          } refused: connectionsMax (${this.#p.cfg.connectionsMax}) reached`,
        });
        conn.close();
        continue;
      }
      if (!this.#makeRoomFor(conn)) continue;
      this.#p.track(this.#acceptOne(conn));
    }
  }

  /**
   * Keeps the handshake bounds (in total and per remote address). At a bound,
   * the oldest pending handshake that has not sent its hello yet is closed to
   * make room: slow or silent connections cannot keep a legitimate node (whose
   * hello arrives at once) out. With none stalled, the new connection is refused.
   */
  #makeRoomFor(conn: FrameConnection): boolean {
    const host = conn.remoteAddr.hostname;
    let sameHost = 0;
    for (const p of this.#pending.values()) if (p.host === host) sameHost++;
    const perHostFull = sameHost >= this.#p.cfg.handshakesPendingPerAddressMax;
    const totalFull = this.#pending.size >= this.#p.cfg.handshakesPendingMax;
    if (!perHostFull && !totalFull) return true;
    const now = this.#p.cfg.clock.now();
    // The oldest that sent no hello; else the oldest whose challenge went unanswered too long.
    const candidates = [...this.#pending.values()].filter((p) => !perHostFull || p.host === host);
    const victim = candidates.find((p) => !p.progressed) ??
      candidates.find((p) => now - p.helloAt >= CHALLENGE_GRACE_MS);
    if (victim !== undefined) {
      const p = victim;
      this.#pending.delete(p.conn);
      p.conn.close();
      this.#p.counters.handshakesEvicted++;
      // Under a flood this happens per connection: logged at most once per interval.
      if (now - this.#evictLoggedAt >= ACCEPT_LOG_INTERVAL_MS) {
        const more = this.#evictSuppressed > 0 ? ` (and ${this.#evictSuppressed} more before)` : "";
        this.#p.cfg.log({
          level: "warn",
          node: this.#p.cfg.name,
          msg:
            `a handshake from ${p.host} that had not ${
              p.progressed ? "answered the challenge" : "sent its hello"
            } after ${now - p.at} ms ` +
            `was closed to make room (${
              perHostFull ? "handshakesPendingPerAddressMax" : "handshakesPendingMax"
            })${more}`,
        });
        this.#evictLoggedAt = now;
        this.#evictSuppressed = 0;
      } else this.#evictSuppressed++;
      return true;
    }
    this.#p.counters.handshakesRefused++;
    this.#p.cfg.log({
      level: "warn",
      node: this.#p.cfg.name,
      msg: `connection from ${
        formatAddress(conn.remoteAddr)
      } refused: too many handshakes in progress`,
    });
    conn.close();
    return false;
  }

  async #acceptOne(conn: FrameConnection): Promise<void> {
    const pending: Pending = {
      conn,
      host: conn.remoteAddr.hostname,
      at: this.#p.cfg.clock.now(),
      progressed: false,
      helloAt: Infinity,
    };
    this.#pending.set(conn, pending);
    const { clock, handshakeTimeoutMs } = this.#p.cfg;
    let timedOut = false;
    const timer = clock.setTimeout(() => {
      timedOut = true;
      conn.close();
    }, handshakeTimeoutMs);
    let accepted: Accepted;
    let instance = "";
    const from = formatAddress(conn.remoteAddr);
    try {
      accepted = await serverHandshake(
        conn,
        this.#p.hooks.handshakeConfig(),
        (a) => this.#p.hooks.admit(a, instance = instanceHex(a.instance)),
        {
          onHello: () => {
            pending.progressed = true;
            pending.helloAt = this.#p.cfg.clock.now();
          },
        },
      );
    } catch (e) {
      const code = e instanceof HandshakeError ? e.code : undefined;
      const bad = e instanceof ProtocolError || e instanceof FrameTooLargeError ||
        code === "auth" || code === "cluster" || code === "protocol";
      if (bad) this.#p.counters.badConnections++;
      if (timedOut) this.#p.counters.handshakesTimedOut++;
      if (code !== undefined) this.#p.counters.handshakesRefused++;
      const refused = code !== undefined && code !== "timeout";
      this.#p.cfg.log({
        level: bad || refused ? "warn" : "debug",
        node: this.#p.cfg.name,
        msg: timedOut
          ? `handshake from ${from} timed out after ${handshakeTimeoutMs} ms`
          : `handshake from ${from} ${refused ? "refused" : "failed"}`,
        error: e,
      });
      conn.close();
      return;
    } finally {
      clock.clearTimeout(timer);
      this.#pending.delete(conn);
    }
    if (this.#p.closed) {
      conn.close();
      return;
    }
    conn.frameBytesMax = this.#p.cfg.frameBytesMax;
    const ch = this.#p.cfg.channels.get(accepted.channel);
    const link = this.#p.makeLink(
      conn,
      accepted.spec.name,
      accepted.spec.incarnation,
      accepted.channel,
      accepted.index,
      false,
      ch?.monotonic ?? false,
      instance,
    );
    this.#p.incoming.add(link);
    this.#p.hooks.accepted(accepted, link);
    const peer = this.#p.peers.get(accepted.spec.name);
    if (peer !== undefined && peer.spec.incarnation === accepted.spec.incarnation) {
      peer.lastHeard = clock.now();
      // It is reachable right now: no need to wait for the backoff.
      if (!peer.up && peer.connecting === undefined) this.#p.retryNow(peer);
    }
    this.#p.track(this.#p.readLoop(link));
  }
}
