/**
 * The node's control API, served beside its dashboard when `control` is on
 * (the serf-style CLI talks to it): members with tags, join, leave,
 * force-leave, tags, user events and a live monitor of membership events.
 *
 * Authentication is the dashboard's: off loopback a token is required for
 * everything. A command is a `POST` with `content-type: application/json`
 * (a browser cannot send that cross-site without a preflight, which is never
 * answered), so a web page cannot drive a local node either.
 *
 * @module
 */

import type { UserEvent, UserEvents } from "../broadcast/events.ts";
import type { Node } from "../membership/node.ts";
import type { MembershipChange } from "../membership/membership_state.ts";

/** What the control API may do on this node. */
export interface ControlOptions {
  /** User events (`POST /api/event`, and the monitor shows those received). */
  events?: UserEvents;
  /**
   * What `POST /api/leave` does: by default `node.leave()` (the node stays,
   * alone); the CLI agent leaves and exits, as on SIGTERM.
   */
  leave?: () => Promise<void>;
}

/** Most monitor streams at once. */
export const MONITORS_MAX = 16;
/** Lines a monitor stream holds for a client that does not read; past it the stream ends. */
const MONITOR_BUFFER = 256;

const JSON_HEADERS = { "content-type": "application/json", "cache-control": "no-store" };

function json(value: unknown, status = 200): Response {
  return new Response(JSON.stringify(value) + "\n", { status, headers: JSON_HEADERS });
}

function fail(status: number, error: string): Response {
  return json({ ok: false, error }, status);
}

/**
 * The control routes: answers a request for one of them, or undefined for a
 * path that is not one (the dashboard answers it). Authorization is checked
 * by the caller before.
 */
export class ControlApi {
  readonly #node: Node;
  readonly #o: ControlOptions;
  readonly #monitors = new Set<ReadableStreamDefaultController<Uint8Array>>();
  readonly #offs: (() => void)[] = [];
  readonly #enc = new TextEncoder();

  /** Follows `node`'s membership (and user events) for the monitor streams. */
  constructor(node: Node, options: ControlOptions) {
    this.#node = node;
    this.#o = options;
    const line = (event: Record<string, unknown>) => this.#broadcast(event);
    this.#offs.push(
      node.onUp("*", (name, _c, tags) => line({ event: "up", node: name, tags })),
      node.onDown("*", (name) => line({ event: "down", node: name })),
      node.onMemberChange((c: MembershipChange) =>
        line({ event: `member-${c.kind}`, node: c.name, incarnation: c.spec.incarnation })
      ),
    );
    if (options.events !== undefined) {
      this.#offs.push(
        options.events.onEvent((e: UserEvent) =>
          line({ event: "user", name: e.name, payload: e.payload, origin: e.origin, id: e.id })
        ),
      );
    }
  }

  /** Answers `req` when its path is a control route. */
  async route(req: Request, url: URL): Promise<Response | undefined> {
    const path = url.pathname;
    if (path === "/api/members" && req.method === "GET") {
      return json({ ok: true, members: this.#node.memberInfo() });
    }
    if (path === "/api/monitor" && req.method === "GET") return this.#monitor();
    const commands = ["/api/join", "/api/leave", "/api/force-leave", "/api/tags", "/api/event"];
    if (!commands.includes(path)) return undefined;
    if (req.method !== "POST") {
      return new Response("method not allowed\n", { status: 405, headers: { allow: "POST" } });
    }
    if (!/^application\/json\b/.test(req.headers.get("content-type") ?? "")) {
      return fail(415, "a command is a POST with content-type: application/json");
    }
    let body: Record<string, unknown>;
    try {
      const v = await req.json();
      if (typeof v !== "object" || v === null || Array.isArray(v)) throw new TypeError();
      body = v as Record<string, unknown>;
    } catch {
      return fail(400, "the body is not a JSON object");
    }
    try {
      return json({ ok: true, ...await this.#command(path, body) });
    } catch (e) {
      const err = e as Error;
      return fail(err instanceof TypeError || err instanceof RangeError ? 400 : 409, String(err));
    }
  }

  async #command(path: string, b: Record<string, unknown>): Promise<Record<string, unknown>> {
    const node = this.#node;
    switch (path) {
      case "/api/join": {
        if (typeof b.target !== "string") throw new TypeError("join needs { target: host:port }");
        return { joined: await node.join(b.target) };
      }
      case "/api/leave":
        // Answered first: leaving may end this process.
        queueMicrotask(() => void (this.#o.leave ?? (() => node.leave()))().catch(() => {}));
        return { leaving: node.name };
      case "/api/force-leave": {
        if (typeof b.name !== "string") throw new TypeError("force-leave needs { name }");
        await node.leave(b.name);
        return { removed: b.name };
      }
      case "/api/tags": {
        const set = b.set ?? {}, del = b.del ?? [];
        if (typeof set !== "object" || set === null || Array.isArray(set)) {
          throw new TypeError("tags needs { set?: { name: value }, del?: [name] }");
        }
        if (!Array.isArray(del) || !del.every((k) => typeof k === "string")) {
          throw new TypeError("tags needs { set?: { name: value }, del?: [name] }");
        }
        const next: Record<string, string> = { ...node.tags, ...(set as Record<string, string>) };
        for (const k of del as string[]) delete next[k];
        node.setTags(next);
        return { tags: node.tags };
      }
      case "/api/event": {
        if (this.#o.events === undefined) throw new TypeError("this node has no user events");
        if (typeof b.name !== "string") throw new TypeError("event needs { name, payload? }");
        const payload = b.payload === undefined ? "" : b.payload;
        if (typeof payload !== "string") throw new TypeError("an event payload is a string");
        return { id: await this.#o.events.send(b.name, payload) };
      }
    }
    throw new TypeError(`unknown command ${path}`);
  }

  #monitor(): Response {
    if (this.#monitors.size >= MONITORS_MAX) {
      return fail(503, `too many monitors (at most ${MONITORS_MAX})`);
    }
    let me: ReadableStreamDefaultController<Uint8Array>;
    const body = new ReadableStream<Uint8Array>({
      start: (c) => {
        me = c;
        this.#monitors.add(c);
        c.enqueue(this.#enc.encode(`: monitoring ${this.#node.name}\n\n`));
      },
      cancel: () => void this.#monitors.delete(me),
    }, { highWaterMark: MONITOR_BUFFER, size: () => 1 });
    return new Response(body, {
      headers: { "content-type": "text/event-stream", "cache-control": "no-store" },
    });
  }

  #broadcast(event: Record<string, unknown>): void {
    if (this.#monitors.size === 0) return;
    const chunk = this.#enc.encode(
      `data: ${JSON.stringify({ t: Date.now(), ...event })}\n\n`,
    );
    for (const c of this.#monitors) {
      if ((c.desiredSize ?? 0) <= 0) {
        // A monitor that does not read ends rather than buffering without bound.
        this.#monitors.delete(c);
        try {
          c.close();
        } catch { /* closed */ }
        continue;
      }
      c.enqueue(chunk);
    }
  }

  /** Ends the monitors and stops listening. */
  close(): void {
    for (const off of this.#offs) off();
    for (const c of this.#monitors) {
      try {
        c.close();
      } catch { /* closed */ }
    }
    this.#monitors.clear();
  }
}
