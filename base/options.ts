/**
 * Checks of option values shared by every module: each names the option and
 * what it must be (a `RangeError`), so that a bad option is caught where it
 * is given. Not part of the user's API.
 *
 * @module
 */

/** A number option: at least `min`, finite unless `infinite` is allowed. */
export function numberOption(
  name: string,
  v: unknown,
  dflt: number,
  min = 1,
  infinite = false,
): number {
  const x = v ?? dflt;
  if (
    typeof x !== "number" || Number.isNaN(x) || x < min || (!infinite && !Number.isFinite(x))
  ) {
    throw new RangeError(
      `${name} must be a ${infinite ? "" : "finite "}number >= ${min}${
        infinite ? " (or Infinity)" : ""
      }, got ${String(v)}`,
    );
  }
  return x;
}

/** A timeout option: > 0 ms, `Infinity` for none. */
export function timeoutOption(name: string, v: unknown, dflt: number): number {
  const x = v ?? dflt;
  if (typeof x !== "number" || !(x > 0)) {
    throw new RangeError(`${name} must be a number of ms > 0 (or Infinity), got ${String(v)}`);
  }
  return x;
}
