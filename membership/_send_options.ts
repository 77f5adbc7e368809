// The options of send, call and sendMany, checked where they are given: an
// unknown key, or a value of the wrong kind, is refused with a TypeError that
// names it. Module-private: the delivery layer uses them.

/** The keys `send` takes (anything else is refused by name). */
export const SEND_OPTIONS: ReadonlySet<string> = new Set([
  "channel",
  "partitionKey",
  "ack",
  "timeoutMs",
  "signal",
  "causalLabel",
  "transitive",
]);
/** The keys `call` takes. */
export const CALL_OPTIONS: ReadonlySet<string> = new Set([
  "timeoutMs",
  "channel",
  "partitionKey",
  "signal",
  "transitive",
]);
/** The keys `sendMany` takes. */
export const SEND_MANY_OPTIONS: ReadonlySet<string> = new Set(["channel", "partitionKey"]);

/** Refuses an options object with a key `known` does not hold, naming it. */
export function checkOptionKeys(options: object, known: ReadonlySet<string>, what: string): void {
  for (const k in options) {
    if (known.has(k)) continue;
    const hint = k === "clock"
      ? " (causal delivery keeps its own vector clocks per label: pass causalLabel)"
      : "";
    throw new TypeError(
      `unknown ${what} option ${JSON.stringify(k)}${hint}; known: ${[...known].join(", ")}`,
    );
  }
}

/** Throws a `TypeError` for a partition key that is not a string or a number. */
export function checkKey(key: unknown): void {
  if (key !== undefined && typeof key !== "string" && typeof key !== "number") {
    throw new TypeError(`partitionKey must be a string or a number, got ${typeof key}`);
  }
}

/** Throws a `TypeError` for a `transitive` that is not a boolean. */
export function checkTransitive(v: unknown): void {
  if (v !== undefined && typeof v !== "boolean") {
    throw new TypeError(`transitive must be a boolean, got ${typeof v}`);
  }
}

/** Throws a `TypeError` for a causal label that is not a string of 1-256 characters. */
export function checkLabel(label: unknown): asserts label is string {
  if (typeof label !== "string" || label.length === 0 || label.length > 256) {
    throw new TypeError(
      `causalLabel must be a string of 1-256 characters, got ${
        typeof label === "string" ? JSON.stringify(label.slice(0, 40)) : typeof label
      }`,
    );
  }
}
