// Finds where a value stops being something the wire can carry, and names the
// path (`msg.items[3].callback is a function`). Run only after encoding or the
// scan failed, so that the common case pays nothing. Module-private.

const IDENT = /^[A-Za-z_$][A-Za-z0-9_$]*$/;

function child(path: string, key: string | number): string {
  if (typeof key === "number") return `${path}[${key}]`;
  return IDENT.test(key) ? `${path}.${key}` : `${path}[${JSON.stringify(key)}]`;
}

/** What is wrong with `v` itself (not its contents), or undefined. */
function problemOf(v: unknown, bigintBytesMax: number): string | undefined {
  switch (typeof v) {
    case "function":
      return "is a function";
    case "symbol":
      return "is a symbol";
    case "bigint": {
      const bits = (v < 0n ? -v : v).toString(2).length;
      return bits > bigintBytesMax * 8
        ? `is a bigint of ${bits} bits (at most ${bigintBytesMax * 8} cross the wire)`
        : undefined;
    }
    case "object":
      if (v instanceof Error) {
        return `is an Error (${v.name}): send { name, message } instead`;
      }
      if (v instanceof RegExp) return "is a RegExp: send its source string instead";
      if (v instanceof Promise) return "is a Promise (await it first)";
      if (v instanceof WeakMap || v instanceof WeakSet) return "is a WeakMap or WeakSet";
      return undefined;
  }
  return undefined;
}

/**
 * The first part of `root` that cannot cross the wire, as a sentence starting
 * with its path, or undefined when none was found.
 */
export function findUnsendable(
  root: unknown,
  rootName: string,
  depthMax: number,
  bigintBytesMax: number,
): string | undefined {
  const ancestors: object[] = [];
  const ancestorPaths: string[] = [];
  const visit = (v: unknown, path: string, depth: number): string | undefined => {
    const p = problemOf(v, bigintBytesMax);
    if (p !== undefined) return `${path} ${p}`;
    if (typeof v !== "object" || v === null) return undefined;
    const i = ancestors.indexOf(v);
    if (i >= 0) return `${path} is a cycle (it refers back to ${ancestorPaths[i]})`;
    if (depth >= depthMax) return `${path} nests deeper than ${depthMax} levels`;
    if (ArrayBuffer.isView(v) || v instanceof ArrayBuffer || v instanceof Date) return undefined;
    ancestors.push(v);
    ancestorPaths.push(path);
    try {
      if (Array.isArray(v)) {
        for (let k = 0; k < v.length; k++) {
          const r = visit(v[k], child(path, k), depth + 1);
          if (r !== undefined) return r;
        }
      } else if (v instanceof Map) {
        let k = 0;
        for (const [key, val] of v) {
          const r = visit(key, `${path}<key ${k}>`, depth + 1) ??
            visit(val, `${path}.get(${JSON.stringify(String(key))})`, depth + 1);
          if (r !== undefined) return r;
          k++;
        }
      } else if (v instanceof Set) {
        let k = 0;
        for (const item of v) {
          const r = visit(item, `${path}<item ${k++}>`, depth + 1);
          if (r !== undefined) return r;
        }
      } else {
        for (const key of Object.keys(v)) {
          const r = visit((v as Record<string, unknown>)[key], child(path, key), depth + 1);
          if (r !== undefined) return r;
        }
      }
    } finally {
      ancestors.pop();
      ancestorPaths.pop();
    }
    return undefined;
  };
  return visit(root, rootName, 0);
}
