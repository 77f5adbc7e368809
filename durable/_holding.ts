// What a durable-server consumer holds while it works (a lease on the queue,
// or a lock), renewed by commits so that others can tell it is alive from
// storage alone; and how its failures are classified. Module-private.

import type { TimerId } from "../base/clock.ts";
import type { Core } from "./_core.ts";
import type { Key } from "./storage.ts";

/** A lease or lock this consumer holds, renewed while it works. */
export class Holding {
  vs: string;
  lost = false;
  readonly ctl = new AbortController();
  timer: TimerId | undefined;
  constructor(vs: string) {
    this.vs = vs;
  }
}

export function errorOf(e: unknown): Error {
  return e instanceof Error ? e : new Error(String(e));
}

/** Renews a held record every third of its timeout; a failed renewal means it was taken. */
export function renew<S, Call, Cast, Info, Reply>(
  c: Core<S, Call, Cast, Info, Reply>,
  h: Holding,
  key: Key,
  value: (n: number) => Uint8Array,
  timeoutMs: number,
): void {
  if (!Number.isFinite(timeoutMs)) return;
  let n = 0;
  const tick = () => {
    h.timer = undefined;
    if (h.ctl.signal.aborted || c.stopped) return;
    void c.db.commit([{ key, versionstamp: h.vs }], [{ type: "set", key, value: value(++n) }])
      .then((r) => {
        if (h.ctl.signal.aborted) return;
        if (r.ok) {
          h.vs = r.versionstamp;
          h.timer = c.clock.setTimeout(tick, timeoutMs / 3);
        } else {
          h.lost = true;
          h.ctl.abort(new Error(`${String(key[0])} taken over`));
        }
      }, () => {
        if (!h.ctl.signal.aborted) h.timer = c.clock.setTimeout(tick, timeoutMs / 6);
      });
  };
  h.timer = c.clock.setTimeout(tick, timeoutMs / 3);
}

/** Errors that mean "this result cannot be committed" (as opposed to storage trouble). */
export function isResultError(e: unknown): boolean {
  return e instanceof TypeError || e instanceof RangeError ||
    (e instanceof Error &&
      (e.name === "StateTooLargeError" || e.name === "StorageLimitError"));
}
