// Endpoints: the handlers a node serves, what runs them (a message delivered,
// a call answered, here or from another node), and murmur's own endpoints
// (causal delivery's buffer, routing) that users cannot replace.
// Module-private: the delivery layer composes it.

import type { TimerId } from "../base/clock.ts";
import { decodeValue, encodeForWire, encodeValue } from "../base/codec.ts";
import { FrameTooLargeError, RemoteHandlerError, UnknownEndpointError } from "./errors.ts";
import { checkSchema, type Schema, validate, ValidationError } from "../base/schema.ts";
import type { Link } from "./_link.ts";
import { logAs, type NodeConfig } from "./_config.ts";
import type { Handler, MessageContext } from "./messaging.ts";
import type { RelayHandler } from "./relay.ts";
import { type CausalMessage, CausalOrder, parseStamp } from "./_causal.ts";
import { decodeMessage, ENDPOINT_NAME_BYTES_MAX, Tag } from "./wire.ts";

/** The reserved endpoint of labelled (causally ordered) messages. */
export const CAUSAL_ENDPOINT = "murmur.causal";

/** A labelled message waiting for causal delivery. */
interface Labelled {
  endpoint: string;
  payload: unknown;
  ctx: MessageContext;
}

/** Throws a `TypeError` naming what is wrong with an endpoint name. */
export function checkEndpoint(endpoint: unknown): asserts endpoint is string {
  if (
    typeof endpoint !== "string" || endpoint.length === 0 ||
    endpoint.length > ENDPOINT_NAME_BYTES_MAX
  ) {
    throw new TypeError(
      `endpoint name must be a string of 1-${ENDPOINT_NAME_BYTES_MAX} characters, got ${
        typeof endpoint === "string" ? JSON.stringify(endpoint.slice(0, 40)) : typeof endpoint
      }`,
    );
  }
}

/** The endpoints of one node. */
export class Endpoints {
  readonly #cfg: NodeConfig;
  readonly #isPartitioned: (name: string) => boolean;
  readonly handlers = new Map<string, Handler>();
  /** murmur's own endpoints (causal delivery, routing): not the user's to replace. */
  readonly #internal = new Map<string, RelayHandler>();
  readonly #unregisterListeners = new Set<(endpoint: string) => void>();
  /** Causal delivery per label: what waits for a predecessor. */
  readonly causal: CausalOrder<Labelled>;
  #causalTimer: { id: TimerId; at: number } | undefined;

  constructor(cfg: NodeConfig, selfKey: string, isPartitioned: (name: string) => boolean) {
    this.#cfg = cfg;
    this.#isPartitioned = isPartitioned;
    this.causal = new CausalOrder<Labelled>(selfKey, cfg.causal);
    this.#internal.set(CAUSAL_ENDPOINT, (msg, ctx) => this.#receiveLabelled(msg, ctx));
  }

  /** Adds one of murmur's own endpoints. */
  setInternal(endpoint: string, handler: RelayHandler): void {
    this.#internal.set(endpoint, handler);
  }

  /** Messages refused by an endpoint's schema (sends dropped, calls answered with the error). */
  invalidMessages = 0;
  #lastInvalidLog = -Infinity;

  register(endpoint: string, handler: Handler, schema?: Schema): () => void {
    checkEndpoint(endpoint);
    if (typeof handler !== "function") throw new TypeError("handler must be a function");
    checkSchema(schema, `the schema of endpoint "${endpoint}"`);
    if (this.#internal.has(endpoint)) {
      throw new TypeError(`endpoint "${endpoint}" is reserved by murmur`);
    }
    if (this.handlers.has(endpoint)) {
      throw new TypeError(`endpoint "${endpoint}" is already registered`);
    }
    const h = schema === undefined ? handler : this.#checked(endpoint, handler, schema);
    this.handlers.set(endpoint, h);
    return () => {
      if (this.handlers.get(endpoint) === h) this.unregister(endpoint);
    };
  }

  /** The handler behind a schema: a message that fails throws a `ValidationError` and never reaches it. */
  #checked(endpoint: string, handler: Handler, schema: Schema): Handler {
    const node = this.#cfg.name;
    return (msg, ctx) => {
      const r = validate(schema, msg, { node, endpoint });
      if (r instanceof Promise) {
        return r.then((v) => {
          if (!v.ok) throw v.error;
          return handler(v.value, ctx);
        });
      }
      if (!r.ok) throw r.error;
      return handler(r.value, ctx);
    };
  }

  /** A handler failed on a send: a refused message is counted and logged (at most once a second); anything else is logged. */
  #failed(endpoint: string, from: string, e: unknown, how: string): void {
    if (!(e instanceof ValidationError)) {
      this.#log("error", `handler "${endpoint}" ${how}`, from, e);
      return;
    }
    this.invalidMessages++;
    const now = this.#cfg.clock.now();
    if (now - this.#lastInvalidLog < 1000) return;
    this.#lastInvalidLog = now;
    this.#log("warn", `message refused by the schema of "${endpoint}" (${e.message})`, from);
  }

  unregister(endpoint: string): boolean {
    if (!this.handlers.delete(endpoint)) return false;
    for (const fn of [...this.#unregisterListeners]) {
      try {
        fn(endpoint);
      } catch (e) {
        this.#log("error", "onUnregister callback threw", undefined, e);
      }
    }
    return true;
  }

  onUnregister(fn: (endpoint: string) => void): () => void {
    if (typeof fn !== "function") throw new TypeError("callback must be a function");
    this.#unregisterListeners.add(fn);
    return () => void this.#unregisterListeners.delete(fn);
  }

  /**
   * Calls the endpoint's handler. A frame received as `[Tag.Msg, endpoint, payload]`
   * goes along as a third argument, which only murmur's own handlers read (a
   * relay such as Plumtree forwards those bytes instead of encoding them again).
   */
  deliver(endpoint: string, payload: unknown, ctx: MessageContext, frame?: Uint8Array): void {
    const h = this.handlers.get(endpoint) ?? this.#internal.get(endpoint);
    if (h === undefined) {
      this.#log("debug", `message for unknown endpoint "${endpoint}" dropped`, ctx.from);
      return;
    }
    try {
      const r = (h as RelayHandler)(payload, ctx, frame);
      if (r instanceof Promise) r.catch((e) => this.#failed(endpoint, ctx.from, e, "failed"));
    } catch (e) {
      this.#failed(endpoint, ctx.from, e, "threw");
    }
  }

  /** Delivers a message this node sent itself (decoded from its frame: no shared objects). */
  deliverLocal(endpoint: string, frame: Uint8Array, channel: string): void {
    const m = decodeMessage(frame) as { payload: unknown };
    const ctx: MessageContext = Object.freeze({ from: this.#cfg.name, channel });
    queueMicrotask(() => this.deliver(endpoint, m.payload, ctx));
  }

  /** A call this node makes to itself. */
  async callLocal(endpoint: string, frame: Uint8Array, channel: string): Promise<unknown> {
    const h = this.handlers.get(endpoint);
    if (h === undefined) throw new UnknownEndpointError(this.#cfg.name, endpoint);
    const m = decodeMessage(frame) as { payload: unknown };
    let r: unknown;
    try {
      r = await h(m.payload, { from: this.#cfg.name, channel });
    } catch (e) {
      if (e instanceof ValidationError) {
        this.invalidMessages++;
        throw e;
      }
      const err = e instanceof Error ? e : new Error(String(e));
      throw new RemoteHandlerError(this.#cfg.name, endpoint, err.name, err.message);
    }
    return decodeValue(encodeForWire(r, "reply", `reply of endpoint "${endpoint}"`));
  }

  /** Answers a call that arrived on `link`. */
  async answer(id: number, endpoint: string, payload: unknown, link: Link): Promise<void> {
    const h = this.handlers.get(endpoint);
    let reply: unknown[];
    if (h === undefined) {
      reply = [Tag.Reply, id, 1, null];
    } else {
      try {
        reply = [Tag.Reply, id, 0, await h(payload, link.context)];
      } catch (e) {
        reply = [Tag.Reply, id, 2, this.#errorValue(e)];
      }
    }
    if (link.closed || this.#isPartitioned(link.peer)) return;
    let frame: Uint8Array;
    try {
      frame = encodeForWire(reply, "frame");
      if (frame.length > this.#cfg.frameBytesMax) {
        throw new FrameTooLargeError(frame.length, this.#cfg.frameBytesMax);
      }
    } catch (e) {
      let why = (e as Error).message;
      try {
        encodeForWire(reply[3], "reply");
      } catch (inner) {
        why = (inner as Error).message;
      }
      this.#log("warn", `reply of endpoint "${endpoint}" could not be sent: ${why}`, link.peer);
      frame = encodeValue([Tag.Reply, id, 2, ["TypeError", `reply could not be sent: ${why}`]]);
    }
    link.enqueueControl(frame);
  }

  /**
   * What a reply says of a handler's error: `[name, message]`, and for a
   * refused message a third element, its issues (a peer of an older version
   * reads the first two: a `RemoteHandlerError` named `ValidationError`).
   */
  #errorValue(e: unknown): unknown[] {
    if (e instanceof ValidationError) {
      this.invalidMessages++;
      return [e.name, e.message.slice(0, 4096), e.issues];
    }
    const err = e instanceof Error ? e : new Error(String(e));
    return [err.name, err.message.slice(0, 4096)];
  }

  /** A routed call arrived here: the handler's answer as `[status, value]`. */
  async answerRouted(
    endpoint: string,
    payload: unknown,
    ctx: MessageContext,
  ): Promise<[0 | 1 | 2, unknown]> {
    const h = this.handlers.get(endpoint);
    if (h === undefined) return [1, null];
    let value: unknown;
    try {
      value = await h(payload, ctx);
    } catch (e) {
      return [2, this.#errorValue(e)];
    }
    try {
      encodeForWire(value, "reply", `reply of endpoint "${endpoint}"`);
    } catch (e) {
      return [2, ["TypeError", `reply could not be sent: ${(e as Error).message}`]];
    }
    return [0, value];
  }

  /** A labelled message arrived: delivered now (with what it unblocks), or it waits. */
  #receiveLabelled(raw: unknown, ctx: MessageContext): void {
    const v = raw as unknown[];
    if (!Array.isArray(v) || v.length !== 6 || typeof v[4] !== "string") {
      this.#log("warn", "malformed labelled message dropped", ctx.from);
      return;
    }
    let stamp;
    try {
      stamp = parseStamp(v, this.#cfg.causal);
    } catch (e) {
      this.#log("warn", "malformed labelled message dropped", ctx.from, e);
      return;
    }
    const m: CausalMessage<Labelled> = {
      stamp,
      item: { endpoint: v[4], payload: v[5], ctx },
      at: this.#cfg.clock.now(),
    };
    const ready = this.causal.receive(
      m,
      (why) => this.#log("warn", `labelled message of "${stamp.label}" dropped: ${why}`, ctx.from),
    );
    for (const r of ready) this.deliver(r.item.endpoint, r.item.payload, r.item.ctx);
    this.#armCausalTimer();
  }

  /** Wakes up when the oldest waiting labelled message passes `causalWaitMs`. */
  #armCausalTimer(): void {
    const at = this.causal.nextDeadline();
    if (at === undefined || !Number.isFinite(at)) return;
    if (this.#causalTimer !== undefined && this.#causalTimer.at <= at) return;
    const { clock } = this.#cfg;
    if (this.#causalTimer !== undefined) clock.clearTimeout(this.#causalTimer.id);
    const id = clock.setTimeout(() => {
      this.#causalTimer = undefined;
      for (const r of this.causal.expire(clock.now())) {
        this.#log(
          "warn",
          `labelled message of "${r.stamp.label}" delivered after its wait: predecessors skipped`,
          r.item.ctx.from,
        );
        this.deliver(r.item.endpoint, r.item.payload, r.item.ctx);
      }
      this.#armCausalTimer();
    }, Math.max(0, at - clock.now()));
    this.#causalTimer = { id, at };
  }

  close(): void {
    if (this.#causalTimer !== undefined) this.#cfg.clock.clearTimeout(this.#causalTimer.id);
    this.#causalTimer = undefined;
  }

  #log(level: "debug" | "warn" | "error", msg: string, peer?: string, error?: unknown): void {
    logAs(this.#cfg, level, msg, peer, error);
  }
}
