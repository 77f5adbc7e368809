/**
 * Validation at the edges through Standard Schema, the interface that zod,
 * valibot, arktype and others implement (`"~standard"`): murmur depends on no
 * validation library; any value of this shape is a schema. A message that
 * fails its schema never reaches a handler; {@linkcode ValidationError} names
 * the path of each problem.
 *
 * @module
 */

import { MurmurError } from "./errors.ts";

/** One problem a schema found (Standard Schema's issue). */
export interface SchemaIssue {
  /** What is wrong. */
  readonly message: string;
  /** Where: keys, or segments holding a key. */
  readonly path?: ReadonlyArray<PropertyKey | { readonly key: PropertyKey }> | undefined;
}

/** What a schema's `validate` returns (Standard Schema's result). */
export type SchemaResult<Output> =
  | { readonly value: Output; readonly issues?: undefined }
  | { readonly issues: ReadonlyArray<SchemaIssue> };

/**
 * A Standard Schema (version 1): what zod 3.24+, zod 4, valibot 1, arktype
 * and others give. `Output` is what a handler receives.
 *
 * @example
 * ```ts
 * import type { Schema } from "@murmur/murmur";
 * // A hand-written schema: a string of at most 10 characters.
 * const short: Schema<unknown, string> = {
 *   "~standard": {
 *     version: 1,
 *     vendor: "hand",
 *     validate: (v) =>
 *       typeof v === "string" && v.length <= 10
 *         ? { value: v }
 *         : { issues: [{ message: "expected a short string" }] },
 *   },
 * };
 * console.log(short["~standard"].vendor); // hand
 * ```
 */
export interface Schema<Input = unknown, Output = Input> {
  /** The Standard Schema properties. */
  readonly "~standard": {
    /** The spec's version: 1. */
    readonly version: 1;
    /** The library that made the schema. */
    readonly vendor: string;
    /** Checks a value; may return a promise (asynchronous refinements). */
    readonly validate: (
      value: unknown,
    ) => SchemaResult<Output> | Promise<SchemaResult<Output>>;
    /** Types only (never read at run time). */
    readonly types?: { readonly input: Input; readonly output: Output } | undefined;
  };
}

/** One problem of a {@linkcode ValidationError}: a readable path (`items[3].name`, `""` for the value itself) and a message. */
export interface ValidationIssue {
  /** Where, as `a.b[2]["odd key"]`; `""` for the value itself. */
  path: string;
  /** What is wrong. */
  message: string;
}

/** Longest message or path kept per issue, and most issues kept (a hostile value cannot grow an error without bound). */
export const VALIDATION_ISSUES_MAX = 16;
const TEXT_MAX = 512;

/**
 * A value failed its schema. From `call`: the remote endpoint's schema
 * refused the request (the handler did not run); `node` and `endpoint` say
 * where. `issues` names the path of each problem.
 *
 * @example
 * ```ts
 * import { ValidationError } from "@murmur/murmur";
 * const e = new ValidationError([{ path: "user.age", message: "expected a number" }], { endpoint: "signup" });
 * console.log(e.message); // endpoint "signup": invalid message: user.age: expected a number
 * ```
 */
export class ValidationError extends MurmurError {
  /** Each problem, with its path. */
  readonly issues: readonly ValidationIssue[];
  /** The node whose schema refused the value, when it was another node's. */
  readonly node: string | undefined;
  /** The endpoint (or topic) whose schema refused it. */
  readonly endpoint: string | undefined;
  /** Creates the error. */
  constructor(
    issues: readonly ValidationIssue[],
    where: { node?: string; endpoint?: string; what?: string } = {},
  ) {
    const list = issues.slice(0, VALIDATION_ISSUES_MAX);
    const text = list.map((i) => (i.path === "" ? i.message : `${i.path}: ${i.message}`))
      .join("; ");
    const at = [
      where.endpoint !== undefined ? `${where.what ?? "endpoint"} "${where.endpoint}"` : "",
      where.node !== undefined ? `on node "${where.node}"` : "",
    ].filter((s) => s !== "").join(" ");
    super(`${at === "" ? "" : `${at}: `}invalid message: ${text}`);
    this.issues = list;
    this.node = where.node;
    this.endpoint = where.endpoint;
  }
}

function cut(s: string): string {
  return s.length > TEXT_MAX ? `${s.slice(0, TEXT_MAX)}…` : s;
}

/** Renders a Standard Schema path as `a.b[2]["odd key"]`. */
export function renderPath(path: SchemaIssue["path"]): string {
  let out = "";
  for (const seg of path ?? []) {
    const k = typeof seg === "object" && seg !== null ? seg.key : seg;
    if (typeof k === "number") out += `[${k}]`;
    else if (typeof k === "symbol") out += `[${String(k)}]`;
    else if (/^[A-Za-z_$][\w$]*$/.test(k)) out += out === "" ? k : `.${k}`;
    else out += `[${JSON.stringify(k)}]`;
  }
  return cut(out);
}

function toIssues(issues: ReadonlyArray<SchemaIssue>): ValidationIssue[] {
  return issues.slice(0, VALIDATION_ISSUES_MAX).map((i) => ({
    path: renderPath(i.path),
    message: cut(String(i.message)),
  }));
}

/** Whether `v` has the shape of a Standard Schema (version 1). */
export function isSchema(v: unknown): v is Schema {
  if (typeof v !== "object" && typeof v !== "function") return false;
  if (v === null) return false;
  const s = (v as { "~standard"?: unknown })["~standard"];
  return typeof s === "object" && s !== null && (s as { version?: unknown }).version === 1 &&
    typeof (s as { validate?: unknown }).validate === "function";
}

/** Throws a `TypeError` naming `what` unless `v` is a Standard Schema (or undefined). */
export function checkSchema(v: unknown, what: string): asserts v is Schema | undefined {
  if (v !== undefined && !isSchema(v)) {
    throw new TypeError(
      `${what} must be a Standard Schema (an object with "~standard" of version 1, as zod and valibot make)`,
    );
  }
}

/**
 * Validates `value`: its output, or a `ValidationError`. Synchronous when the
 * schema is (no promise is made for it); a schema that throws counts as a
 * failed validation.
 *
 * @example
 * ```ts
 * import { validate } from "@murmur/murmur/protocol";
 * const positive = {
 *   "~standard": {
 *     version: 1 as const,
 *     vendor: "hand",
 *     validate: (v: unknown) => typeof v === "number" && v > 0 ? { value: v } : { issues: [{ message: "not positive" }] },
 *   },
 * };
 * console.log(validate(positive, 3)); // { ok: true, value: 3 }
 * ```
 */
export function validate<T>(
  schema: Schema<unknown, T>,
  value: unknown,
  where: { node?: string; endpoint?: string; what?: string } = {},
): Validated<T> | Promise<Validated<T>> {
  let r: SchemaResult<T> | Promise<SchemaResult<T>>;
  try {
    r = schema["~standard"].validate(value);
  } catch (e) {
    return failed([{ message: `the schema threw: ${(e as Error)?.message ?? String(e)}` }], where);
  }
  if (r instanceof Promise) {
    return r.then(
      (x) => settle(x, where),
      (e) =>
        failed([{ message: `the schema threw: ${(e as Error)?.message ?? String(e)}` }], where),
    );
  }
  return settle(r, where);
}

/** A validated value, or the error that names what was wrong. */
export type Validated<T> = { ok: true; value: T } | { ok: false; error: ValidationError };

function settle<T>(
  r: SchemaResult<T>,
  where: { node?: string; endpoint?: string; what?: string },
): Validated<T> {
  if (r.issues !== undefined) return failed(r.issues, where);
  return { ok: true, value: r.value };
}

function failed(
  issues: ReadonlyArray<SchemaIssue>,
  where: { node?: string; endpoint?: string; what?: string },
): Validated<never> {
  const list = toIssues(issues.length > 0 ? issues : [{ message: "refused by the schema" }]);
  return { ok: false, error: new ValidationError(list, where) };
}

/** Reads issues that came over the wire (from a peer: checked, bounded). */
export function issuesFromWire(v: unknown): ValidationIssue[] | undefined {
  if (!Array.isArray(v)) return undefined;
  const out: ValidationIssue[] = [];
  for (const i of v.slice(0, VALIDATION_ISSUES_MAX)) {
    if (typeof i !== "object" || i === null) return undefined;
    const { path, message } = i as { path?: unknown; message?: unknown };
    if (typeof path !== "string" || typeof message !== "string") return undefined;
    out.push({ path: cut(path), message: cut(message) });
  }
  return out;
}
