// The simulator's event queue: a binary heap ordered by time, then by the
// order events were scheduled (so equal times run in a fixed order). Module-private.
//
// The heap lives in parallel arrays (times and sequence numbers in typed
// arrays, the functions in a plain one), not as one object per event: a sift
// compares numbers that sit together in memory instead of following a pointer
// to a scattered object at every level. With 100,000 simulated nodes the heap
// holds hundreds of thousands of events, and those pointer chases were cache
// misses; each event was also an allocation.

const INITIAL_CAPACITY = 1024;

/** Events by time, then by scheduling order. */
export class EventQueue {
  #at = new Float64Array(INITIAL_CAPACITY);
  #seq = new Float64Array(INITIAL_CAPACITY);
  #run: ((() => void) | undefined)[] = [];
  #size = 0;
  #nextSeq = 0;

  /** Events waiting. */
  get size(): number {
    return this.#size;
  }

  /** Schedules `run` at virtual time `at`. */
  push(at: number, run: () => void): void {
    if (this.#size === this.#at.length) this.#grow();
    const times = this.#at, seqs = this.#seq, runs = this.#run;
    const seq = this.#nextSeq++;
    let i = this.#size++;
    while (i > 0) {
      const p = (i - 1) >> 1;
      const pa = times[p]!;
      if (at > pa || (at === pa && seq > seqs[p]!)) break;
      times[i] = pa;
      seqs[i] = seqs[p]!;
      runs[i] = runs[p];
      i = p;
    }
    times[i] = at;
    seqs[i] = seq;
    runs[i] = run;
  }

  /** The time of the next event (Infinity when none is left). */
  peek(): number {
    return this.#size === 0 ? Infinity : this.#at[0]!;
  }

  /** Takes the next event (the one `peek` timed); undefined when none is left. */
  pop(): (() => void) | undefined {
    if (this.#size === 0) return undefined;
    const times = this.#at, seqs = this.#seq, runs = this.#run;
    const top = runs[0];
    const n = --this.#size;
    // The last event moves down from the root into the hole.
    const at = times[n]!, seq = seqs[n]!, run = runs[n];
    runs[n] = undefined;
    if (n > 0) {
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= n) break;
        const r = l + 1;
        let m = l;
        if (r < n && (times[r]! < times[l]! || (times[r] === times[l] && seqs[r]! < seqs[l]!))) {
          m = r;
        }
        const ma = times[m]!;
        if (at < ma || (at === ma && seq < seqs[m]!)) break;
        times[i] = ma;
        seqs[i] = seqs[m]!;
        runs[i] = runs[m];
        i = m;
      }
      times[i] = at;
      seqs[i] = seq;
      runs[i] = run;
    }
    return top;
  }

  #grow(): void {
    const cap = this.#at.length * 2;
    const at = new Float64Array(cap), seq = new Float64Array(cap);
    at.set(this.#at);
    seq.set(this.#seq);
    this.#at = at;
    this.#seq = seq;
  }
}
