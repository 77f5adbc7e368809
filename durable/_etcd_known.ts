/**
 * The counters and sequences an {@linkcode EtcdStorage} handle knows: their
 * value at a revision, read or written by this handle. A commit that sums a
 * counter or appends to a sequence compares its revision and writes the new
 * value, instead of reading it first each time; a compare that fails notes
 * what etcd holds now. Bounded (cleared past `KNOWN_MAX`). Module-private.
 *
 * @module
 */

import type { Json } from "./_etcd_client.ts";
import { unb64 } from "./_etcd_client.ts";
import { StorageError } from "./storage.ts";
import { hex, type Known, type Plan, unpackValue } from "./_etcd_txn.ts";

/** Counters and sequences remembered at most (past it, all are forgotten and read again). */
const KNOWN_MAX = 4096;

/** One handle's known counters and sequences, by the hex of their etcd key. */
export class KnownCounters {
  /** By hex key: what the transaction builder compares and writes from. */
  readonly map = new Map<string, Known>();

  /** The counters and sequences `plan` reads from storage that are not known. */
  missing(plan: Plan): Uint8Array[] {
    return [...reads(plan)].filter((k) => !this.map.has(hex(k)));
  }

  /** A counter or sequence as read (absent: 0 at revision 0). */
  note(key: Uint8Array, kv: Json | undefined): void {
    const v = kv === undefined ? 0n : unpackValue(unb64(kv.value));
    if (typeof v !== "bigint") throw new StorageError("sum on a key that does not hold a counter");
    // What was read replaces what was known (a deleted counter reads as revision 0).
    this.remember([{ key, value: v }], kv === undefined ? "0" : String(kv.mod_revision), true);
  }

  /** After a commit: the counters and sequences it wrote, at its revision (unless newer ones are known). */
  remember(
    written: readonly { key: Uint8Array; value: bigint }[],
    revision: string,
    overwrite = false,
  ): void {
    for (const w of written) {
      const h = hex(w.key);
      const k = this.map.get(h);
      if (!overwrite && k !== undefined && BigInt(k.rev) > BigInt(revision)) continue;
      if (this.map.size >= KNOWN_MAX) this.map.clear();
      this.map.set(h, { value: w.value, rev: revision });
    }
  }

  /** Forgets what `plan` reads (a lost attempt applied: what it wrote is not known). */
  forget(plan: Plan): void {
    for (const k of reads(plan)) this.map.delete(hex(k));
  }
}

/** Counters and sequences a plan reads from storage. */
function* reads(plan: Plan): Iterable<Uint8Array> {
  for (const w of plan.writes.values()) if (w.sum && w.sum.base === undefined) yield w.key;
  for (const a of plan.appends.values()) yield a.seqKey;
}
