/**
 * Typed topics: a value that names a topic and carries the type of its
 * messages (and, if given, the schema that checks them at each subscriber).
 * String topics keep working beside them.
 *
 * @module
 */

import { checkSchema, type Schema } from "../base/schema.ts";

/** Longest topic name, in UTF-16 code units (a topic is a process group of the pubsub's scope). */
export const TOPIC_LENGTH_MAX = 1024;

/** A topic whose messages are `T`. Make one with {@linkcode topic}. */
export interface Topic<T = unknown> {
  /** The topic's name. */
  readonly name: string;
  /** Checks each message at each subscriber before its handler runs (unless the subscriber gives another). */
  readonly schema: Schema<unknown, T> | undefined;
  /** Types only: never set. */
  readonly "~types"?: { readonly msg: T } | undefined;
}

/** Who published a message, on which topic. */
export interface PubSubContext {
  /** The topic. */
  readonly topic: string;
  /** The node that published it. */
  readonly from: string;
}

/**
 * Makes a typed topic.
 *
 * @throws {TypeError} a name that is not a string of at most 1024 characters, or a schema that is not a Standard Schema.
 *
 * @example
 * ```ts
 * import { topic } from "@murmur/murmur";
 * const chat = topic<{ user: string; text: string }>("room:lobby");
 * console.log(chat.name); // room:lobby
 * ```
 */
export function topic<T = unknown>(
  name: string,
  options: { schema?: Schema<unknown, T> } = {},
): Topic<T> {
  checkTopic(name);
  checkSchema(options.schema, `the schema of topic "${name}"`);
  return Object.freeze({ name, schema: options.schema });
}

/** Throws a `TypeError` naming what is wrong with a topic name. */
export function checkTopic(name: unknown): asserts name is string {
  if (typeof name !== "string" || name.length > TOPIC_LENGTH_MAX) {
    throw new TypeError(
      `a topic is a string of at most ${TOPIC_LENGTH_MAX} characters, got ${
        typeof name === "string" ? `${name.length} characters` : typeof name
      }`,
    );
  }
}

/** The name of a string or typed topic (checked). */
export function topicName(t: string | Topic<unknown>): string {
  const name = typeof t === "string" ? t : typeof t === "object" && t !== null ? t.name : t;
  checkTopic(name);
  return name;
}
