// Watch streams on etcd's gateway, used only as wake-ups: what a watch yields
// always comes from a read, so a stream that breaks, lags or is compacted
// away costs a re-read, never a missed change. Module-private.

import { b64, type EtcdClient, sleep } from "./_etcd_client.ts";

/** Least time between two openings of one key's stream. */
const RESTART_MS = 500;

/** One key's watch stream. */
class Stream {
  readonly ctl = new AbortController();
  done: Promise<void> = Promise.resolve();
  live = true;
}

/** Watch streams on a set of keys that wake one waiter. */
export class WakeStreams {
  readonly #client: EtcdClient;
  readonly #keys: Uint8Array[];
  readonly #signal: AbortSignal;
  readonly #streams: (Stream | undefined)[];
  #wake = Promise.withResolvers<void>();
  /** Set by any event since the last `wait`. */
  #woken = false;

  constructor(client: EtcdClient, keys: Uint8Array[], signal: AbortSignal) {
    this.#client = client;
    this.#keys = keys;
    this.#signal = signal;
    this.#streams = keys.map(() => undefined);
  }

  /** Opens a stream, from `revision`, for every key without a live one. */
  start(revision: bigint): void {
    for (const [i, key] of this.#keys.entries()) {
      const s = this.#streams[i];
      if (s?.live) continue;
      const stream = new Stream();
      this.#streams[i] = stream;
      stream.done = this.#read(stream, key, revision);
    }
  }

  /** Closes every stream (the next `start` opens new ones, on the client's current endpoint). */
  async restart(): Promise<void> {
    const old = this.#streams.splice(0, this.#streams.length, ...this.#keys.map(() => undefined));
    for (const s of old) s?.ctl.abort();
    await Promise.all(old.map((s) => s?.done));
  }

  /** Resolves at the next event, broken stream or abort, or after `ms`; true when something woke it. */
  async wait(ms: number): Promise<boolean> {
    if (this.#woken) {
      this.#woken = false;
      return true;
    }
    let timer: ReturnType<typeof setTimeout> | undefined;
    const onAbort = () => this.#notify();
    this.#signal.addEventListener("abort", onAbort, { once: true });
    try {
      const woke = await Promise.race([
        this.#wake.promise.then(() => true),
        new Promise<boolean>((r) => (timer = setTimeout(() => r(false), ms))),
      ]);
      this.#woken = false;
      return woke;
    } finally {
      clearTimeout(timer);
      this.#signal.removeEventListener("abort", onAbort);
    }
  }

  /** Ends every stream and waits for their readers. */
  async close(): Promise<void> {
    for (const s of this.#streams) s?.ctl.abort();
    await Promise.all(this.#streams.map((s) => s?.done));
  }

  #notify(): void {
    this.#woken = true;
    const w = this.#wake;
    this.#wake = Promise.withResolvers<void>();
    w.resolve();
  }

  async #read(stream: Stream, key: Uint8Array, revision: bigint): Promise<void> {
    // Our own controller, aborted by either source: the reader is also cancelled
    // directly, since an aborted fetch does not always end a body being read.
    const ctl = new AbortController();
    const signal = ctl.signal;
    let reader: ReadableStreamDefaultReader<string> | undefined;
    const onAbort = () => {
      ctl.abort();
      void reader?.cancel().catch(() => {});
    };
    stream.ctl.signal.addEventListener("abort", onAbort, { once: true });
    this.#signal.addEventListener("abort", onAbort, { once: true });
    if (stream.ctl.signal.aborted || this.#signal.aborted) onAbort();
    const started = performance.now();
    try {
      const res = await this.#client.stream(
        "/v3/watch",
        { create_request: { key: b64(key), start_revision: revision.toString() } },
        signal,
      );
      reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
      if (signal.aborted) await reader.cancel().catch(() => {});
      let buf = "";
      for (let n = 0; !signal.aborted; n++) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += value;
        let nl;
        while ((nl = buf.indexOf("\n")) >= 0) {
          const line = buf.slice(0, nl).trim();
          buf = buf.slice(nl + 1);
          if (line === "") continue;
          const msg = JSON.parse(line);
          const r = msg.result;
          if (msg.error !== undefined || r === undefined || r.canceled || r.compact_revision) {
            throw new Error("watch ended by etcd"); // broken: re-read and reopen
          }
          if (Array.isArray(r.events) && r.events.length > 0) this.#notify();
        }
      }
    } catch {
      if (!signal.aborted) this.#client.rotate();
    } finally {
      stream.ctl.signal.removeEventListener("abort", onAbort);
      this.#signal.removeEventListener("abort", onAbort);
      await reader?.cancel().catch(() => {});
    }
    // Broken (not closed by us): wake the reader to re-read and reopen, at most
    // about once per RESTART_MS per key when an endpoint keeps refusing.
    const wait = RESTART_MS - (performance.now() - started);
    if (wait > 0 && !signal.aborted) await sleep(wait, signal);
    stream.live = false;
    if (!signal.aborted) this.#notify();
  }
}
