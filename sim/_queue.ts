// The simulator's event queue: a binary heap ordered by time, then by the
// order events were scheduled (so equal times run in a fixed order). Module-private.

export interface SimEvent {
  at: number;
  seq: number;
  run: () => void;
}

export class EventQueue {
  readonly #heap: SimEvent[] = [];
  #seq = 0;

  get size(): number {
    return this.#heap.length;
  }

  push(at: number, run: () => void): void {
    const h = this.#heap;
    const e: SimEvent = { at, seq: this.#seq++, run };
    h.push(e);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!before(e, h[p]!)) break;
      h[i] = h[p]!;
      i = p;
    }
    h[i] = e;
  }

  /** The earliest event's time, or Infinity. */
  peek(): number {
    return this.#heap.length === 0 ? Infinity : this.#heap[0]!.at;
  }

  pop(): SimEvent | undefined {
    const h = this.#heap;
    if (h.length === 0) return undefined;
    const top = h[0]!;
    const last = h.pop()!;
    if (h.length > 0) {
      let i = 0;
      const n = h.length;
      for (;;) {
        const l = 2 * i + 1, r = l + 1;
        let m = i;
        let best = last;
        if (l < n && before(h[l]!, best)) {
          m = l;
          best = h[l]!;
        }
        if (r < n && before(h[r]!, best)) m = r;
        if (m === i) break;
        h[i] = h[m]!;
        i = m;
      }
      h[i] = last;
    }
    return top;
  }
}

function before(a: SimEvent, b: SimEvent): boolean {
  return a.at < b.at || (a.at === b.at && a.seq < b.seq);
}
