/**
 * Typed endpoints: a value that names an endpoint and carries the types of
 * its requests and replies (and, if given, the schema that checks requests),
 * so that `register`, `send` and `call` are checked by TypeScript. String
 * endpoints keep working beside them.
 *
 * @module
 */

import { checkSchema, type Schema } from "../base/schema.ts";
import { checkEndpoint } from "./_endpoints.ts";
import type { MessageContext } from "./messaging.ts";

/**
 * An endpoint with its request type `Req` and reply type `Res`. Make one with
 * {@linkcode endpoint}; the types exist only for the compiler.
 */
export interface Endpoint<Req = unknown, Res = unknown> {
  /** The endpoint's name on the wire. */
  readonly name: string;
  /** Checks every request before the handler runs (used by `register` unless it is given another). */
  readonly schema: Schema<unknown, Req> | undefined;
  /** Types only: never set. */
  readonly "~types"?: { readonly req: Req; readonly res: Res } | undefined;
}

/** A handler of a typed endpoint: gets a `Req`, answers a `Res` (or a promise of one). */
export type TypedHandler<Req, Res> = (msg: Req, ctx: MessageContext) => Res | Promise<Res>;

/** Options of `Node.register`. */
export interface RegisterOptions<T = unknown> {
  /**
   * Checks each message before the handler runs. A message that fails is not
   * handed to the handler: a call is answered with a `ValidationError` naming
   * the path; a send is dropped, counted in `stats().invalidMessages` and
   * logged.
   */
  schema?: Schema<unknown, T>;
}

/**
 * Makes a typed endpoint. With `schema`, every request is checked before the
 * handler runs (on the node that registers it).
 *
 * @throws {TypeError} a name that is not 1-256 characters, or a schema that is not a Standard Schema.
 *
 * @example
 * ```ts
 * import { endpoint, Node } from "@murmur/murmur";
 * const add = endpoint<{ a: number; b: number }, number>("add");
 * await using node = await Node.start({ name: "a", cookie: "c" });
 * node.register(add, ({ a, b }) => a + b);
 * const sum: number = await node.call("a", add, { a: 1, b: 2 });
 * console.log(sum); // 3
 * ```
 */
export function endpoint<Req = unknown, Res = unknown>(
  name: string,
  options: { schema?: Schema<unknown, Req> } = {},
): Endpoint<Req, Res> {
  checkEndpoint(name);
  checkSchema(options.schema, `the schema of endpoint "${name}"`);
  return Object.freeze({ name, schema: options.schema });
}

/** The name of a string or typed endpoint (checked when it is neither). */
export function endpointName(e: string | Endpoint<unknown, unknown>): string {
  if (typeof e === "string") return e;
  if (typeof e === "object" && e !== null && typeof e.name === "string") return e.name;
  throw new TypeError(
    `an endpoint is a name or a value made by endpoint(), got ${e === null ? "null" : typeof e}`,
  );
}
