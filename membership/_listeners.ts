// Callbacks keyed by node name (`onUp`/`onDown`, with "*" for any node) and
// the waiters of `join` for a node to come up. Module-private.

import type { Clock } from "../base/clock.ts";
import { NodeDownError } from "./errors.ts";
import type { LogLevel } from "../base/logger.ts";
import { isName, type NodeSpec, type Tags } from "./spec.ts";
import type { MembershipChange } from "./membership_state.ts";
import { formatAddress } from "./transport.ts";

/** Changes of one event logged one per line; more are summarized. */
const CHANGES_LOGGED_MAX = 16;

type Listener = {
  fn: (name: string, channel: string | undefined, tags: Tags) => void;
  channel: string | undefined;
};

const NO_TAGS: Tags = Object.freeze({});

/** Callbacks by node name; "*" hears every node. A callback that throws is logged. */
export class NamedListeners {
  readonly #byName = new Map<string, Set<Listener>>();

  constructor(private readonly threw: (name: string, error: unknown) => void) {}

  /** `channel`: called once per transition with the node and that channel. */
  add(
    name: string,
    fn: (name: string, channel: string | undefined, tags: Tags) => void,
    channel?: string,
  ): () => void {
    if (typeof name !== "string" || (name !== "*" && !isName(name))) {
      throw new TypeError(`expected a node name or "*", got ${JSON.stringify(name)}`);
    }
    if (typeof fn !== "function") throw new TypeError("callback must be a function");
    let set = this.#byName.get(name);
    if (set === undefined) this.#byName.set(name, set = new Set());
    const s = set;
    const l: Listener = { fn, channel };
    s.add(l);
    return () => {
      s.delete(l);
      if (s.size === 0 && this.#byName.get(name) === s) this.#byName.delete(name);
    };
  }

  /** Calls the listeners of `name` and "*"; a channel listener only for a channel in `channels`. */
  fire(name: string, channels: Iterable<string>, tags: Tags = NO_TAGS): void {
    let open: Set<string> | undefined;
    for (const key of [name, "*"]) {
      const set = this.#byName.get(key);
      if (set === undefined) continue;
      for (const l of [...set]) {
        if (l.channel !== undefined && !(open ??= new Set(channels)).has(l.channel)) continue;
        try {
          l.fn(name, l.channel, tags);
        } catch (e) {
          this.threw(name, e);
        }
      }
    }
  }

  clear(): void {
    this.#byName.clear();
  }
}

type Waiter = { resolve: () => void; reject: (e: unknown) => void };

/** Promises waiting for a node to come up, each with its own deadline. */
export class UpWaiters {
  readonly #byName = new Map<string, Set<Waiter>>();

  constructor(private readonly clock: Clock) {}

  /** Resolves when `up(name)` is called; rejects with NodeDownError after `timeoutMs`. */
  wait(name: string, timeoutMs: number): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      let set = this.#byName.get(name);
      if (set === undefined) this.#byName.set(name, set = new Set());
      const s = set;
      const done = () => {
        this.clock.clearTimeout(timer);
        s.delete(w);
        if (s.size === 0 && this.#byName.get(name) === s) this.#byName.delete(name);
      };
      const w: Waiter = {
        resolve: () => {
          done();
          resolve();
        },
        reject: (e: unknown) => {
          done();
          reject(e);
        },
      };
      const timer = this.clock.setTimeout(
        () => w.reject(new NodeDownError(name, `could not be joined within ${timeoutMs} ms`)),
        timeoutMs,
      );
      s.add(w);
    });
  }

  up(name: string): void {
    for (const w of [...this.#byName.get(name) ?? []]) w.resolve();
  }

  fail(name: string, error: unknown): void {
    for (const w of [...this.#byName.get(name) ?? []]) w.reject(error);
  }

  failAll(error: unknown): void {
    for (const set of [...this.#byName.values()]) for (const w of [...set]) w.reject(error);
  }
}

type Log = (level: LogLevel, msg: string, peer?: string, error?: unknown) => void;

/** `onMemberChange` callbacks; also logs each change (a large batch in one line per kind). */
export class ChangeListeners {
  readonly #fns = new Set<(change: MembershipChange) => void>();

  constructor(private readonly log: Log) {}

  add(fn: (change: MembershipChange) => void): () => void {
    if (typeof fn !== "function") throw new TypeError("callback must be a function");
    this.#fns.add(fn);
    return () => void this.#fns.delete(fn);
  }

  report(changes: readonly MembershipChange[]): void {
    if (changes.length > CHANGES_LOGGED_MAX) this.#summarize(changes);
    for (const c of changes) this.#report(c, changes.length <= CHANGES_LOGGED_MAX);
  }

  clear(): void {
    this.#fns.clear();
  }

  /** One line per kind for a large batch (junk gossip must not flood the log). */
  #summarize(changes: readonly MembershipChange[]): void {
    const byKind = new Map<string, string[]>();
    for (const c of changes) {
      let names = byKind.get(c.kind);
      if (names === undefined) byKind.set(c.kind, names = []);
      names.push(c.name);
    }
    for (const [kind, names] of byKind) {
      const shown = names.slice(0, 4).join(", ");
      this.log(
        names.length > 100 ? "warn" : "info",
        `${names.length} members ${kind}: ${shown}${names.length > 4 ? ", ..." : ""}`,
      );
    }
  }

  #report(c: MembershipChange, log: boolean): void {
    const addrs = (s: NodeSpec) => s.listenAddrs.map(formatAddress).join(",");
    const msg = c.kind === "replaced"
      ? `member replaced: incarnation ${c.previous!.incarnation} -> ${c.spec.incarnation}` +
        (c.previous && addrs(c.previous) !== addrs(c.spec)
          ? `, stale spec at ${addrs(c.previous)} pruned for ${addrs(c.spec)}`
          : "")
      : `member ${c.kind} (incarnation ${c.spec.incarnation}, ${addrs(c.spec) || "no address"})`;
    if (log) this.log("info", msg, c.name);
    for (const fn of [...this.#fns]) {
      try {
        fn(c);
      } catch (e) {
        this.log("error", "member-change callback threw", c.name, e);
      }
    }
  }
}
