/**
 * Errors of durable servers.
 *
 * @module
 */

import { MurmurError } from "../base/errors.ts";

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
 * A queued message failed `maxAttempts` times (its callback threw, timed out,
 * or returned what could not be committed) and was moved to the dead-letter
 * queue; a waiting caller gets this error with the last failure (`cause` holds
 * it when the failure happened in this process).
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
  constructor(attempts: number, lastName: string, lastMessage: string, options?: ErrorOptions) {
    super(
      `dead-lettered after ${attempts} failed attempts; last: ${lastName}: ${lastMessage}`,
      options,
    );
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
 * This handle was stopped (`stop()`, `kill()`, or a callback's `{ stop }`);
 * also what a call gets when its callback answered `{ stop }` without a reply.
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

/**
 * A callback's result state is larger than the server can commit: over
 * `stateBytesMax`. The attempt fails (and counts toward `maxAttempts`).
 *
 * @example
 * ```ts
 * import { StateTooLargeError } from "@murmur/murmur/durable";
 * console.log(new StateTooLargeError(12_000_000, 8_388_608).message);
 * ```
 */
export class StateTooLargeError extends MurmurError {
  /** The encoded size of the state. */
  readonly bytes: number;
  /** The limit in force (`stateBytesMax`). */
  readonly limitBytes: number;
  /** Creates the error. */
  constructor(bytes: number, limitBytes: number) {
    super(
      `state of ${bytes} bytes is over stateBytesMax (${limitBytes} bytes) by ${
        bytes - limitBytes
      } bytes`,
    );
    this.bytes = bytes;
    this.limitBytes = limitBytes;
  }
}

/**
 * A callback did not return within `callbackTimeoutMs`: the attempt was
 * abandoned (its result, if it ever comes, is never committed).
 *
 * @example
 * ```ts
 * import { CallbackTimeoutError } from "@murmur/murmur/durable";
 * console.log(new CallbackTimeoutError("handleCast", 60000).message);
 * ```
 */
export class CallbackTimeoutError extends MurmurError {
  /** Which callback. */
  readonly callback: string;
  /** The timeout that expired. */
  readonly timeoutMs: number;
  /** Creates the error. */
  constructor(callback: string, timeoutMs: number) {
    super(`${callback} did not return within ${timeoutMs} ms (callbackTimeoutMs); abandoned`);
    this.callback = callback;
    this.timeoutMs = timeoutMs;
  }
}
