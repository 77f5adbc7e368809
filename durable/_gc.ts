// Garbage collection of a durable server: reply keys of abandoned calls and
// state generations that no header names. Module-private.

import type { Core } from "./_core.ts";
import { dec, K_REPLY, K_STATE, type ReplyRecord } from "./_records.ts";
import { type Header, ORPHAN_GRACE_MS } from "./_state.ts";
import type { Entry } from "./storage.ts";

/** Keys removed per commit. */
const GC_BATCH = 100;

/** Removes reply keys past their expiry and state generations no header names. */
export async function collectGarbage<S, Call, Cast, Info, Reply>(
  c: Core<S, Call, Cast, Info, Reply>,
): Promise<number> {
  const now = c.clock.wallNow();
  const stale: Entry[] = [];
  for (const e of await c.db.list({ prefix: [K_REPLY] })) {
    const [, , expiresAt] = dec<ReplyRecord>(e);
    if (expiresAt < now) stale.push(e);
  }
  const h = await c.db.get(K_STATE);
  const current = h.value === null ? undefined : dec<Header>(h)[0];
  const orphans: Entry[] = [];
  for (const e of await c.db.list({ prefix: K_STATE })) {
    const gen = e.key[1] as string;
    const born = parseInt(gen.split("-")[0]!, 36);
    if (gen !== current && now - born > ORPHAN_GRACE_MS) orphans.push(e);
  }
  const all = [...stale, ...orphans];
  for (let i = 0; i < all.length; i += GC_BATCH) {
    const group = all.slice(i, i + GC_BATCH);
    const r = await c.db.commit(
      group.map((e) => ({ key: e.key, versionstamp: e.versionstamp })),
      group.map((e) => ({ type: "delete", key: e.key })),
    );
    if (r.ok) c.stats.repliesCollected += group.filter((e) => e.key[0] === K_REPLY).length;
  }
  return all.length;
}
