// Yielding to the event loop. Module-private.

/** Node's `setImmediate`, once loaded. */
let immediate: ((callback: () => void) => unknown) | undefined;

/**
 * Lets every queued microtask and ready I/O callback run, then resolves.
 * `setImmediate` is used because a nested zero-delay `setTimeout` is clamped to
 * milliseconds. It comes from `node:timers`, loaded on the first call: loading
 * it starts part of Deno's Node compatibility layer (about 2 MiB), which an
 * idle node never needs (only simulations and a peer flooding a node yield).
 */
export async function settle(): Promise<void> {
  immediate ??= (await import("node:timers")).setImmediate;
  await new Promise<void>((resolve) => immediate!(resolve));
}
