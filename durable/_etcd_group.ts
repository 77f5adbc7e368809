/**
 * Group commit for {@linkcode EtcdStorage}: commits of one handle that
 * read-modify-write counters or sequences wait in line (concurrent ones would
 * only fail each other's compares); those waiting when the line moves go to
 * etcd as one transaction. Module-private.
 *
 * The rule for a merged commit:
 * - A commit joins the group before it only when none of its checks is on a
 *   key that the group writes (or under a sequence the group appends to), and
 *   it checks no key at another versionstamp than the group does: its checks
 *   then read the same values merged as alone, after the group's writes.
 * - Applied: every member is answered with the one versionstamp.
 * - Its checks failed (one member's check no longer holds), or it is past
 *   etcd's limits: each member is committed again alone, in order, and gets
 *   its own answer. Nothing of the merged attempt applied (a commit whose
 *   outcome was unknown is fenced before it reports failure).
 * - An error (etcd unreachable, the outcome unknown): every member gets it.
 *
 * @module
 */

import {
  type Check,
  type CommitResult,
  type Key,
  type Mutation,
  StorageLimitError,
} from "./storage.ts";

/** Commits merged into one transaction at most. */
export const GROUP_COMMITS_MAX = 32;
/** Mutations of a merged transaction at most (etcd allows 128 operations by default). */
export const GROUP_MUTATIONS_MAX = 48;

interface Waiting {
  readonly checks: readonly Check[];
  readonly mutations: readonly Mutation[];
  readonly done: PromiseWithResolvers<CommitResult>;
}

/** Counts of {@linkcode GroupCommit}: what was merged, and what had to be split. */
export interface GroupCommitStats {
  /** Transactions sent for waiting commits (merged or alone). */
  transactions: number;
  /** Commits that went in a merged transaction that applied. */
  merged: number;
  /** Merged transactions whose checks failed (their members were committed alone). */
  splits: number;
}

/** The line of one handle's serial commits, merged where the rule allows. */
export class GroupCommit {
  readonly stats: GroupCommitStats = { transactions: 0, merged: 0, splits: 0 };
  readonly #queue: Waiting[] = [];
  readonly #run: (
    checks: readonly Check[],
    mutations: readonly Mutation[],
  ) => Promise<CommitResult>;
  readonly #keyHex: (key: Key) => string;
  #running = false;

  /**
   * @param run Commits one transaction (retrying counter conflicts).
   * @param keyHex A key as etcd stores it, in hex (equal keys, equal strings).
   */
  constructor(
    run: (checks: readonly Check[], mutations: readonly Mutation[]) => Promise<CommitResult>,
    keyHex: (key: Key) => string,
  ) {
    this.#run = run;
    this.#keyHex = keyHex;
  }

  /** Queues a commit; resolves with its own outcome. */
  commit(checks: readonly Check[], mutations: readonly Mutation[]): Promise<CommitResult> {
    const done = Promise.withResolvers<CommitResult>();
    this.#queue.push({ checks, mutations, done });
    if (!this.#running) void this.#drain();
    return done.promise;
  }

  async #drain(): Promise<void> {
    this.#running = true;
    try {
      while (this.#queue.length > 0) {
        const group = this.#take();
        if (group.length === 1) {
          await this.#alone(group[0]!);
          continue;
        }
        let result: CommitResult;
        this.stats.transactions++;
        try {
          result = await this.#run(
            group.flatMap((w) => w.checks),
            group.flatMap((w) => w.mutations),
          );
        } catch (e) {
          if (!(e instanceof StorageLimitError)) {
            for (const w of group) w.done.reject(e);
            continue;
          }
          result = { ok: false }; // too big merged: each alone
        }
        if (result.ok) {
          this.stats.merged += group.length;
          for (const w of group) w.done.resolve(result);
          continue;
        }
        this.stats.splits++;
        for (const w of group) await this.#alone(w);
      }
    } finally {
      this.#running = false;
    }
  }

  async #alone(w: Waiting): Promise<void> {
    this.stats.transactions++;
    try {
      w.done.resolve(await this.#run(w.checks, w.mutations));
    } catch (e) {
      w.done.reject(e);
    }
  }

  /** The next group: the first waiting commit and those after it the rule lets join. */
  #take(): Waiting[] {
    const group = [this.#queue.shift()!];
    const written = new Set<string>();
    const prefixes: string[] = [];
    const checked = new Map<string, string | null>();
    let mutations = group[0]!.mutations.length;
    const add = (w: Waiting) => {
      for (const m of w.mutations) {
        if (m.type === "appendOrdered") prefixes.push(this.#keyHex(m.prefix));
        else written.add(this.#keyHex(m.key));
      }
      for (const c of w.checks) checked.set(this.#keyHex(c.key), c.versionstamp);
    };
    add(group[0]!);
    while (this.#queue.length > 0 && group.length < GROUP_COMMITS_MAX) {
      const w = this.#queue[0]!;
      if (mutations + w.mutations.length > GROUP_MUTATIONS_MAX) break;
      const fits = w.checks.every((c) => {
        const h = this.#keyHex(c.key);
        if (written.has(h) || prefixes.some((p) => h.startsWith(p))) return false;
        const seen = checked.get(h);
        return seen === undefined || seen === c.versionstamp;
      });
      if (!fits) break;
      group.push(this.#queue.shift()!);
      mutations += w.mutations.length;
      add(w);
    }
    return group;
  }
}
