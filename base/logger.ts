/**
 * Log records and loggers. Every murmur module logs through the logger of the
 * node it runs on (`node.logger`), so one option decides where all of a node's
 * records go.
 *
 * What is logged at which level: membership changes (a member added,
 * replaced, removed, up, down, left) at `info`; refused handshakes (wrong
 * cookie, wrong cluster, a name in use, a stale incarnation), dropped
 * malformed input and reaped junk at `warn`, with the remote address; failures
 * of user callbacks at `error`; everything else at `debug`.
 *
 * @module
 */

/** Severity of a log record, in increasing order. */
export type LogLevel = "debug" | "info" | "warn" | "error";

/** One log record. */
export interface LogRecord {
  /** Severity. */
  level: LogLevel;
  /** The node (or durable server tenant) that logs. */
  node: string;
  /** What happened. */
  msg: string;
  /** The peer concerned, when there is one. */
  peer?: string;
  /** The error behind it, when there is one. */
  error?: unknown;
}

/** Receives log records. */
export type Logger = (record: LogRecord) => void;

const RANK: Record<LogLevel, number> = { debug: 0, info: 1, warn: 2, error: 3 };

/** Options of {@linkcode createConsoleLogger}. */
export interface ConsoleLoggerOptions {
  /**
   * The lowest level printed.
   *
   * @default `"info"`
   */
  level?: LogLevel;
}

/**
 * A logger that prints one line per record at or above `level`: `debug` and
 * `info` to `console.log`, `warn` and `error` to `console.error`.
 *
 * @example Print warnings and errors only
 * ```ts
 * import { createConsoleLogger } from "@murmur/murmur/membership";
 * const logger = createConsoleLogger({ level: "warn" });
 * logger({ level: "info", node: "a", msg: "not printed" });
 * ```
 */
export function createConsoleLogger(options: ConsoleLoggerOptions = {}): Logger {
  const level = options.level ?? "info";
  if (!(level in RANK)) {
    throw new TypeError(`level must be one of debug, info, warn, error; got ${String(level)}`);
  }
  const min = RANK[level];
  return (r) => {
    if (RANK[r.level] < min) return;
    const peer = r.peer ? ` peer=${r.peer}` : "";
    const err = r.error === undefined
      ? ""
      : `: ${r.error instanceof Error ? `${r.error.name}: ${r.error.message}` : String(r.error)}`;
    const line = `[murmur ${r.level}] ${r.node}${peer} ${r.msg}${err}`;
    if (RANK[r.level] >= RANK.warn) console.error(line);
    else console.log(line);
  };
}

/**
 * The default logger: `info` and above (membership changes, refused
 * handshakes, failures), one line each.
 *
 * @example
 * ```ts
 * import { consoleLogger } from "@murmur/murmur/membership";
 * consoleLogger({ level: "debug", node: "a", msg: "not printed" });
 * ```
 */
export const consoleLogger: Logger = createConsoleLogger();

/**
 * A logger that drops everything (for tests and benchmarks).
 *
 * @example
 * ```ts
 * import { quietLogger } from "@murmur/murmur/membership";
 * quietLogger({ level: "error", node: "a", msg: "dropped" });
 * ```
 */
export const quietLogger: Logger = () => {};
