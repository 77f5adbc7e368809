// The pushes an overlay publisher core keeps for neighbours that graft (ask
// for a push they heard of but did not get): the newest `max`, by id.
// Module-private.

import type { PushId, PushPayload } from "./overlay_wire.ts";

/** The last `max` pushes, by id. */
export class RecentPushes {
  readonly #kept = new Map<string, PushPayload>();

  constructor(readonly max: number) {}

  /** Keeps `payload` of push `id` (the oldest goes past `max`); gives them back. */
  keep(id: PushId, payload: PushPayload): { id: PushId; payload: PushPayload } {
    const k = keyOf(id);
    this.#kept.delete(k);
    this.#kept.set(k, payload);
    if (this.#kept.size > this.max) this.#kept.delete(this.#kept.keys().next().value!);
    return { id, payload };
  }

  /** The payload of push `id`, if kept. */
  get(id: PushId): PushPayload | undefined {
    return this.#kept.get(keyOf(id));
  }
}

function keyOf(id: PushId): string {
  return `${id[1]}\u0000${id[2]}\u0000${id[3]}\u0000${id[4]}`;
}
