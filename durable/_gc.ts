// Garbage collection of a durable server: reply keys of abandoned calls and
// state generations that no header names. Module-private.
//
// No decision compares clocks of different processes (a handle whose wall
// clock ran 11 minutes ahead once deleted live state chunks): a key goes only
// after this handle has seen it unreferenced for long enough on its own
// monotonic clock (a generation: the orphan grace; a reply: its lifetime as
// its writer recorded it), and a generation's deletion is checked against the
// header the GC read, so a state committed meanwhile aborts it.

import type { Core } from "./_core.ts";
import { dec, K_REPLY, K_STATE, type ReplyRecord } from "./_records.ts";
import { type Header, ORPHAN_GRACE_MS } from "./_state.ts";
import type { Check, Entry } from "./storage.ts";

/** Keys removed per commit. */
const GC_BATCH = 100;
/** Most keys the GC keeps a first sighting of (past it, new ones wait for a later pass). */
export const GC_SEEN_MAX = 100_000;

/** Removes reply keys past their lifetime and state generations no header names. */
export async function collectGarbage<S, Call, Cast, Info, Reply>(
  c: Core<S, Call, Cast, Info, Reply>,
): Promise<number> {
  const now = c.clock.now();
  const seen = c.gcSeen;
  const still = new Set<string>();
  /** True once `key` has been seen (unchanged, unreferenced) for `ms` on this handle's clock. */
  const agedOut = (key: string, ms: number) => {
    still.add(key);
    const first = seen.get(key);
    if (first === undefined) {
      if (seen.size < GC_SEEN_MAX) seen.set(key, now);
      return false;
    }
    return now - first >= ms;
  };
  const stale: Entry[] = [];
  for (const e of await c.db.list({ prefix: [K_REPLY] })) {
    const [, , expiresAt, lifetimeMs] = dec<ReplyRecord>(e);
    const key = `r:${String(e.key[1])}:${e.versionstamp}`;
    // A record of an older version carries no lifetime: its expiry, by the wall clock, as before.
    const gone = lifetimeMs === undefined
      ? expiresAt < c.clock.wallNow() && agedOut(key, c.o.replyTtlMs)
      : agedOut(key, lifetimeMs);
    if (gone) stale.push(e);
  }
  const h = await c.db.get(K_STATE);
  const current = h.value === null ? undefined : dec<Header>(h)[0];
  const orphans: Entry[] = [];
  for (const e of await c.db.list({ prefix: K_STATE })) {
    if (e.key.length < 2) continue; // the header itself
    const gen = String(e.key[1]);
    if (gen !== current && agedOut(`g:${gen}`, ORPHAN_GRACE_MS)) orphans.push(e);
  }
  for (const k of [...seen.keys()]) if (!still.has(k)) seen.delete(k);
  // Deleting generations holds only while the header is the one read: a state
  // committed meanwhile (naming one of them) makes the commit fail.
  const header: Check = { key: K_STATE, versionstamp: h.versionstamp };
  let removed = 0;
  for (const [entries, extra] of [[stale, []], [orphans, [header]]] as const) {
    for (let i = 0; i < entries.length; i += GC_BATCH) {
      const group = entries.slice(i, i + GC_BATCH);
      const r = await c.db.commit(
        [...extra, ...group.map((e) => ({ key: e.key, versionstamp: e.versionstamp }))],
        group.map((e) => ({ type: "delete", key: e.key })),
      );
      if (!r.ok) continue;
      removed += group.length;
      if (entries === stale) c.stats.repliesCollected += group.length;
    }
  }
  return removed;
}
