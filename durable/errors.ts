/**
 * Errors of durable servers.
 *
 * @module
 */

import { MurmurError } from "../membership/errors.ts";

/**
 * A durable `call` got no reply in time. The request stays in the durable
 * queue and may still be processed later; only its reply is abandoned.
 *
 * @example
 * ```ts
 * import { DurableTimeoutError } from "@murmur/murmur/durable";
 * console.log(new DurableTimeoutError(5000).message);
 * ```
 */
export class DurableTimeoutError extends MurmurError {
  /** The timeout that expired. */
  readonly timeoutMs: number;
  /** Creates the error. */
  constructor(timeoutMs: number) {
    super(`no reply within ${timeoutMs} ms (the request may still be processed)`);
    this.timeoutMs = timeoutMs;
  }
}

/**
 * A queued message failed `maxAttempts` times and was moved to the dead-letter
 * queue; a waiting caller gets this error with the last failure.
 *
 * @example
 * ```ts
 * import { DeadLetterError } from "@murmur/murmur/durable";
 * console.log(new DeadLetterError(5, "TypeError", "bad input").message);
 * ```
 */
export class DeadLetterError extends MurmurError {
  /** How many times the callback failed. */
  readonly attempts: number;
  /** `name` of the last error. */
  readonly lastName: string;
  /** `message` of the last error. */
  readonly lastMessage: string;
  /** Creates the error. */
  constructor(attempts: number, lastName: string, lastMessage: string) {
    super(`dead-lettered after ${attempts} failed attempts; last: ${lastName}: ${lastMessage}`);
    this.attempts = attempts;
    this.lastName = lastName;
    this.lastMessage = lastMessage;
  }
}

/**
 * The durable server was killed (its state, queue and reply keys deleted) while
 * the request waited.
 *
 * @example
 * ```ts
 * import { DurableKilledError } from "@murmur/murmur/durable";
 * console.log(new DurableKilledError("shutdown").message);
 * ```
 */
export class DurableKilledError extends MurmurError {
  /** The reason given to `kill`. */
  readonly reason: unknown;
  /** Creates the error. */
  constructor(reason: unknown) {
    super(`durable server was killed: ${String(reason)}`);
    this.reason = reason;
  }
}

/**
 * This handle was stopped (`stop()`, `kill()`, or a callback's `{ stop }`).
 *
 * @example
 * ```ts
 * import { DurableStoppedError } from "@murmur/murmur/durable";
 * console.log(new DurableStoppedError("normal").message);
 * ```
 */
export class DurableStoppedError extends MurmurError {
  /** Why it stopped. */
  readonly reason: unknown;
  /** Creates the error. */
  constructor(reason: unknown) {
    super(`durable server handle is stopped: ${String(reason)}`);
    this.reason = reason;
  }
}
