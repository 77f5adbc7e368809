// The module versions one overlay publisher core knows (its own, its
// origins', its neighbours'), each kept until nobody has run it for a
// tombstone period: an update goes out with one body per version, translated
// (`translateUpdate`, `translateLocalData`), and full data goes to a
// neighbour translated for its version. Module-private.

import { checkSendable } from "../base/codec.ts";
import type { Version } from "./module.ts";
import type { ScopeState } from "./_scope.ts";
import { isPlain } from "./_wire.ts";
import type { Body } from "./overlay_wire.ts";

/** Versions seen, with when, and the translations between them. */
export class VersionBook<Local, Update> {
  readonly #seen = new Map<Version, number>();

  constructor(
    // deno-lint-ignore no-explicit-any
    readonly state: ScopeState<Local, Update, any, any, any>,
    readonly max: number,
  ) {
    this.#seen.set(state.version, Infinity);
  }

  /** Version `v` seen at `now` (past `max`, the least recently seen goes). */
  saw(v: Version, now: number): void {
    if (v === this.state.version) return;
    if (!this.#seen.has(v) && this.#seen.size >= this.max) {
      let oldest: Version | undefined, at = Infinity;
      for (const [k, t] of this.#seen) if (t < at) [oldest, at] = [k, t];
      this.#seen.delete(oldest!);
    }
    this.#seen.set(v, now);
  }

  /** Forgets the versions not seen for `ms` (nobody runs them any more). */
  expire(now: number, ms: number): void {
    for (const [v, at] of this.#seen) if (now - at > ms) this.#seen.delete(v);
  }

  /** One body per version known, each checked for the wire. */
  bodies(kind: "update" | "local_data", value: unknown): Body[] {
    const m = this.state.module, mine = this.state.version;
    const out: Body[] = [[mine, 0, value]];
    for (const v of this.#seen.keys()) {
      if (v === mine) continue;
      const t = kind === "update"
        ? m.translateUpdate(mine, v, value as Update)
        : m.translateLocalData(mine, v, value as Local);
      const what = `publisher "${this.state.scope}": translated for version ${String(v)}`;
      if (isPlain(t)) {
        checkSendable(t.plainMessages, "plainMessages", what);
        out.push([v, 1, t.plainMessages]);
      } else {
        checkSendable(t, kind === "update" ? "update" : "data", what);
        out.push([v, 0, t]);
      }
    }
    return out;
  }

  /** The body for this node's version, if any. */
  bodyFor(bodies: Body[]): Body | undefined {
    for (const b of bodies) if (b[0] === this.state.version) return b;
    return undefined;
  }

  /** `data` for a node of `version`: `[plain, value]`. */
  translated(version: Version, data: Local): [0 | 1, unknown] {
    if (version === this.state.version) return [0, data];
    const t = this.state.module.translateLocalData(this.state.version, version, data);
    return isPlain(t) ? [1, t.plainMessages] : [0, t];
  }
}
