/**
 * Injected time and randomness.
 *
 * Every timer and every random choice in murmur goes through a {@linkcode Clock}
 * and a {@linkcode Random} passed in options. The defaults are the real ones
 * ({@linkcode systemClock}, {@linkcode mathRandom}); tests and simulations pass a
 * {@linkcode SimulatedClock} and a {@linkcode seededRandom} so that hundreds of nodes
 * run in virtual time, in one process, and a failure can be replayed from its seed.
 *
 * @module
 */

import { settle } from "./_settle.ts";

/** An opaque handle returned by {@linkcode Clock.setTimeout}. */
export type TimerId = number | object;

/**
 * A source of time and timers. Two kinds of time: `now()` is monotonic (every
 * timeout, failure detector and lease runs on it, so wall-clock jumps change
 * nothing) and `wallNow()` is the wall clock (for what is compared across
 * processes or shown to people: hybrid logical clock versions, heartbeat
 * timestamps, default incarnations).
 *
 * @example A clock that reports real time
 * ```ts
 * import { systemClock } from "@murmur/murmur/membership";
 * const id = systemClock.setTimeout(() => {}, 10);
 * systemClock.clearTimeout(id);
 * console.log(systemClock.now() >= 0, systemClock.wallNow() > 1.7e12);
 * ```
 */
export interface Clock {
  /** Monotonic milliseconds since an arbitrary, fixed origin. Never decreases. */
  now(): number;
  /** Wall-clock milliseconds since the Unix epoch. May jump either way. */
  wallNow(): number;
  /** Calls `fn` once after `ms` milliseconds. */
  setTimeout(fn: () => void, ms: number): TimerId;
  /** Cancels a timer; unknown or fired ids are ignored. */
  clearTimeout(id: TimerId): void;
}

/**
 * A source of uniformly distributed numbers in `[0, 1)`.
 *
 * @example
 * ```ts
 * import { seededRandom } from "@murmur/murmur/membership";
 * const r = seededRandom(42);
 * const x = r.next();
 * console.log(x >= 0 && x < 1);
 * ```
 */
export interface Random {
  /** The next number in `[0, 1)`. */
  next(): number;
}

/** The longest delay the platform's timers take (2^31 - 1 ms); longer ones are chained. */
const TIMER_MS_MAX = 2 ** 31 - 1;

/**
 * The real clock: `performance.now()` for monotonic time, `Date.now()` for wall
 * time, and the platform's timers. A delay of `Infinity` never fires; delays
 * past 2^31 - 1 ms (about 24.8 days) are honoured rather than overflowing.
 *
 * @example
 * ```ts
 * import { systemClock } from "@murmur/murmur/membership";
 * console.log(typeof systemClock.now(), typeof systemClock.wallNow());
 * ```
 */
export const systemClock: Clock = {
  now: () => performance.now(),
  wallNow: () => Date.now(),
  setTimeout: (fn, ms) => {
    if (!(ms <= TIMER_MS_MAX)) {
      // Infinity or NaN: never; beyond the platform's range: chain.
      const handle: { id: ReturnType<typeof setTimeout> | undefined } = { id: undefined };
      if (ms === Infinity || Number.isNaN(ms)) return handle;
      let left = ms;
      const step = () => {
        if (left <= TIMER_MS_MAX) handle.id = setTimeout(fn, left);
        else {
          left -= TIMER_MS_MAX;
          handle.id = setTimeout(step, TIMER_MS_MAX);
        }
      };
      step();
      return handle;
    }
    return setTimeout(fn, ms);
  },
  clearTimeout: (id) => {
    if (typeof id === "object" && id !== null && "id" in id) {
      clearTimeout((id as { id: ReturnType<typeof setTimeout> | undefined }).id);
    } else clearTimeout(id as number);
  },
};

/**
 * The real randomness: `Math.random()`.
 *
 * @example
 * ```ts
 * import { mathRandom } from "@murmur/murmur/membership";
 * console.log(mathRandom.next() < 1);
 * ```
 */
export const mathRandom: Random = { next: () => Math.random() };

/**
 * A fast, deterministic generator (mulberry32) for tests and simulations.
 *
 * @param seed Any 32-bit integer; the same seed gives the same sequence.
 * @example
 * ```ts
 * import { seededRandom } from "@murmur/murmur/membership";
 * const a = seededRandom(7), b = seededRandom(7);
 * console.log(a.next() === b.next()); // true
 * ```
 */
export function seededRandom(seed: number): Random {
  if (!Number.isFinite(seed)) throw new TypeError(`seed must be a finite number, got ${seed}`);
  let s = seed >>> 0;
  return {
    next(): number {
      s = (s + 0x6d2b79f5) >>> 0;
      let t = s;
      t = Math.imul(t ^ (t >>> 15), t | 1);
      t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    },
  };
}

/**
 * Random bytes from a {@linkcode Random}: `crypto.getRandomValues` when the
 * random source is {@linkcode mathRandom}, the seeded stream otherwise.
 *
 * @example
 * ```ts
 * import { randomBytes, seededRandom } from "@murmur/murmur/membership";
 * console.log(randomBytes(seededRandom(1), 16).length); // 16
 * ```
 */
export function randomBytes(random: Random, length: number): Uint8Array {
  const out = new Uint8Array(length);
  if (random === mathRandom) return crypto.getRandomValues(out);
  for (let i = 0; i < length; i++) out[i] = Math.floor(random.next() * 256);
  return out;
}

interface SimTimer {
  id: number;
  at: number;
  seq: number;
  fn: () => void;
}

/**
 * A clock whose time only moves when told to. Timers fire in time order (ties in
 * the order they were set), and between two timers every pending promise
 * continuation runs, so promise-based code behaves as it would in real time.
 *
 * @example Run two seconds of virtual time instantly
 * ```ts
 * import { SimulatedClock } from "@murmur/murmur/protocol";
 * const clock = new SimulatedClock();
 * let fired = 0;
 * clock.setTimeout(() => fired++, 1500);
 * await clock.advance(2000);
 * console.log(fired, clock.now()); // 1 2000
 * ```
 */
export class SimulatedClock implements Clock {
  #now: number;
  #wallOffset: number;
  #seq = 0;
  #nextId = 1;
  #timers = new Map<number, SimTimer>();
  #heap: SimTimer[] = [];

  /**
   * Creates a clock stopped at `start`.
   *
   * @param start The initial time in milliseconds (default 0).
   * @param wallStart The wall-clock time at `start` (default `start`).
   */
  constructor(start = 0, wallStart: number = start) {
    this.#now = start;
    this.#wallOffset = wallStart - start;
  }

  /** The current virtual time. */
  now(): number {
    return this.#now;
  }

  /** The current virtual wall-clock time: `now()` plus an offset that {@linkcode SimulatedClock.jumpWall} moves. */
  wallNow(): number {
    return this.#now + this.#wallOffset;
  }

  /** Moves the wall clock by `ms` (negative: backwards) without touching monotonic time. */
  jumpWall(ms: number): void {
    if (!Number.isFinite(ms)) throw new RangeError(`jumpWall needs a finite ms, got ${ms}`);
    this.#wallOffset += ms;
  }

  /** Schedules `fn` at `now() + ms` of virtual time (never, for `Infinity`). */
  setTimeout(fn: () => void, ms: number): TimerId {
    if (ms === Infinity) return { never: true };
    const t: SimTimer = {
      id: this.#nextId++,
      at: this.#now + Math.max(0, ms || 0),
      seq: this.#seq++,
      fn,
    };
    this.#timers.set(t.id, t);
    this.#push(t);
    return t.id;
  }

  /** Cancels a timer. */
  clearTimeout(id: TimerId): void {
    if (typeof id === "number") this.#timers.delete(id);
  }

  /** Number of timers still pending. */
  get pending(): number {
    return this.#timers.size;
  }

  /**
   * Moves time forward by `ms`, firing every timer due on the way. Pending
   * promise continuations and real I/O callbacks run between timers.
   */
  async advance(ms: number): Promise<void> {
    if (!(ms >= 0)) throw new RangeError(`advance needs ms >= 0, got ${ms}`);
    const until = this.#now + ms;
    await settle();
    for (;;) {
      const t = this.#peek();
      if (t === undefined || t.at > until) break;
      this.#pop();
      if (!this.#timers.delete(t.id)) continue;
      this.#now = t.at;
      t.fn();
      await settle();
    }
    this.#now = until;
    await settle();
  }

  #less(a: SimTimer, b: SimTimer): boolean {
    return a.at < b.at || (a.at === b.at && a.seq < b.seq);
  }

  #peek(): SimTimer | undefined {
    // Drop cancelled timers lazily.
    while (this.#heap.length > 0 && !this.#timers.has(this.#heap[0]!.id)) this.#pop();
    return this.#heap[0];
  }

  #push(t: SimTimer): void {
    const h = this.#heap;
    h.push(t);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.#less(h[i]!, h[p]!)) break;
      [h[i], h[p]] = [h[p]!, h[i]!];
      i = p;
    }
  }

  #pop(): void {
    const h = this.#heap;
    const last = h.pop();
    if (h.length === 0 || last === undefined) return;
    h[0] = last;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1, r = l + 1;
      let m = i;
      if (l < h.length && this.#less(h[l]!, h[m]!)) m = l;
      if (r < h.length && this.#less(h[r]!, h[m]!)) m = r;
      if (m === i) break;
      [h[i], h[m]] = [h[m]!, h[i]!];
      i = m;
    }
  }
}
