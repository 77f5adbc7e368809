// Ids announced (IHAVE) but not received: each waits `graftTimeoutMs` for its
// payload to arrive eagerly, then is grafted from its announcers in turn every
// `graftRetryMs`, at most `graftRetriesMax` times. Bounded in total
// (`missingMax`, the oldest forgotten) and per first announcer
// (`missingPerPeerMax`, its new ones shed). Module-private: PlumtreeCore
// composes it.

import type { PlumtreeStats, Send } from "./wire.ts";
import { PT } from "./wire.ts";

interface Missing {
  handler: string;
  id: unknown;
  round: number;
  root: string;
  announcers: string[];
  /** The first announcer, whose per-peer count this entry holds. */
  owner: string;
  tries: number;
  at: number;
}

/** The bounds and timing of missing ids. */
export interface MissingLimits {
  graftTimeoutMs: number;
  graftRetryMs: number;
  graftRetriesMax: number;
  missingMax: number;
  missingPerPeerMax: number;
}

/** The missing ids of one node. */
export class MissingIds {
  readonly #o: MissingLimits;
  readonly #stats: PlumtreeStats;
  readonly #byKey = new Map<string, Missing>();
  /** Missing entries per owner (first announcer). */
  readonly #byOwner = new Map<string, number>();
  /** The earliest graft deadline, or earlier (a deleted entry leaves it early: harmless). */
  #nextAt: number | undefined;

  constructor(limits: MissingLimits, stats: PlumtreeStats) {
    this.#o = limits;
    this.#stats = stats;
  }

  get size(): number {
    return this.#byKey.size;
  }

  /** True when `from` announced as many missing ids as it may. */
  full(from: string): boolean {
    return (this.#byOwner.get(from) ?? 0) >= this.#o.missingPerPeerMax;
  }

  /** An id announced by `from` is missing here (key: its `idKey`). */
  announced(
    key: string,
    e: { handler: string; id: unknown; round: number; root: string },
    from: string,
    now: number,
  ): void {
    const m = this.#byKey.get(key);
    if (m !== undefined) {
      if (!m.announcers.includes(from) && m.announcers.length < 8) m.announcers.push(from);
      return;
    }
    const owned = this.#byOwner.get(from) ?? 0;
    if (owned >= this.#o.missingPerPeerMax) {
      // The offending peer's new announcements are shed; everyone else's stay.
      this.#stats.missingDropped++;
      return;
    }
    if (this.#byKey.size >= this.#o.missingMax) {
      const [oldKey, old] = this.#byKey.entries().next().value!;
      this.#delete(oldKey, old);
      this.#stats.missingDropped++;
    }
    const at = now + this.#o.graftTimeoutMs;
    this.#byKey.set(key, {
      handler: e.handler,
      id: e.id,
      round: e.round,
      root: e.root,
      announcers: [from],
      owner: from,
      tries: 0,
      at,
    });
    this.#byOwner.set(from, owned + 1);
    if (this.#nextAt === undefined || at < this.#nextAt) this.#nextAt = at;
  }

  /** The payload of `key` arrived: it is not missing any more. */
  received(key: string): void {
    if (this.#byKey.size === 0) return;
    const m = this.#byKey.get(key);
    if (m !== undefined) this.#delete(key, m);
  }

  /** `peer` is gone: it announces nothing any more. */
  forget(peer: string): void {
    for (const [k, m] of this.#byKey) {
      if (!m.announcers.includes(peer)) continue;
      m.announcers = m.announcers.filter((a) => a !== peer);
      if (m.announcers.length === 0) this.#delete(k, m);
    }
  }

  #delete(key: string, m: Missing): void {
    if (!this.#byKey.delete(key)) return;
    const n = (this.#byOwner.get(m.owner) ?? 1) - 1;
    if (n <= 0) this.#byOwner.delete(m.owner);
    else this.#byOwner.set(m.owner, n);
  }

  /** The earliest graft deadline, if any (possibly a little early). */
  nextDeadline(): number | undefined {
    return this.#byKey.size === 0 ? undefined : this.#nextAt;
  }

  /** Fires graft timers due at `now`: the grafts to send. */
  timers(now: number): Send[] {
    const sends: Send[] = [];
    let next: number | undefined;
    for (const [key, m] of this.#byKey) {
      if (m.at > now) {
        if (next === undefined || m.at < next) next = m.at;
        continue;
      }
      if (m.tries >= this.#o.graftRetriesMax || m.announcers.length === 0) {
        this.#delete(key, m);
        this.#stats.graftGaveUp++;
        continue;
      }
      const peer = m.announcers[m.tries % m.announcers.length]!;
      m.tries++;
      m.at = now + this.#o.graftRetryMs;
      if (next === undefined || m.at < next) next = m.at;
      sends.push({ to: peer, msg: [PT.Graft, m.handler, m.id, m.round, m.root] });
      this.#stats.graft++;
    }
    this.#nextAt = next;
    return sends;
  }
}
