// A node that leaves the cluster when its process is asked to stop: on
// SIGTERM or SIGINT (docker stop, systemd, Kubernetes, Ctrl-C) it leaves
// (others see `left` at once rather than `down` after the failure timeout),
// runs the caller's own shutdown, closes, and the process exits; bounded in
// time. Module-private: `Node.leaveOnSignals` is the face.

import { numberOption } from "../base/options.ts";

/** Options of `Node.leaveOnSignals`. */
export interface LeaveOnSignalsOptions {
  /**
   * The signals that stop the node.
   *
   * @default ["SIGTERM", "SIGINT"]
   */
  signals?: Deno.Signal[];
  /**
   * The longest wait for the leave to go out (and for `beforeClose`); past it
   * the node closes anyway.
   *
   * @default 5000
   */
  drainMs?: number;
  /** Runs after the leave and before the node closes (close your own servers here). */
  beforeClose?: () => void | Promise<void>;
  /**
   * Exit the process once closed (code 0; 1 when the leave or `beforeClose`
   * failed). With false, only the node stops.
   *
   * @default true
   */
  exit?: boolean;
}

/** What `leaveOnSignals` needs of a node. */
export interface Leavable {
  leave(): Promise<void>;
  close(): Promise<void>;
}

/** Installs the listeners; returns a function that removes them. */
export function leaveOnSignals(node: Leavable, options: LeaveOnSignalsOptions = {}): () => void {
  const signals = options.signals ?? ["SIGTERM", "SIGINT"];
  const drainMs = numberOption("drainMs", options.drainMs, 5000, 0);
  if (!Array.isArray(signals) || signals.length === 0) {
    throw new TypeError("signals must name at least one signal");
  }
  let stopping = false;
  const stop = async () => {
    if (stopping) return; // a second signal while draining changes nothing
    stopping = true;
    off();
    let failed = false;
    const bounded = async (what: () => void | Promise<void>) => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      try {
        await Promise.race([
          what(),
          new Promise((_, reject) => {
            timer = setTimeout(() => reject(new Error(`not done within ${drainMs} ms`)), drainMs);
          }),
        ]);
      } catch {
        failed = true;
      } finally {
        clearTimeout(timer);
      }
    };
    await bounded(() => node.leave());
    if (options.beforeClose !== undefined) await bounded(options.beforeClose);
    await node.close().catch(() => {
      failed = true;
    });
    if (options.exit ?? true) Deno.exit(failed ? 1 : 0);
  };
  const listener = () => void stop();
  for (const s of signals) Deno.addSignalListener(s, listener);
  function off(): void {
    for (const s of signals) Deno.removeSignalListener(s, listener);
  }
  return off;
}
