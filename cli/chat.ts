/**
 * A tiny broadcast handler for the demo: every message is kept once, and the
 * node counts what it received.
 *
 * @module
 */

import type { BroadcastHandler, GraftResult } from "../broadcast/mod.ts";

/** One chat line. */
export interface ChatLine {
  /** Unique id (sender and sequence). */
  id: string;
  /** The text. */
  text: string;
}

/** Keeps every chat line once. */
export class ChatLog implements BroadcastHandler<ChatLine, string, string> {
  /** The handler's name on every node. */
  readonly name = "chat";
  /** Lines by id. */
  readonly lines = new Map<string, string>();
  /** How many times the application was handed a line (equals `lines.size` when nothing is delivered twice). */
  delivered = 0;

  /** id and text. */
  broadcastData(m: ChatLine): { id: string; payload: string } {
    return { id: m.id, payload: m.text };
  }
  /** New lines are kept and delivered. */
  merge(id: string, text: string): boolean {
    if (this.lines.has(id)) return false;
    this.lines.set(id, text);
    this.delivered++;
    return true;
  }
  /** Known lines are stale. */
  isStale(id: string): boolean {
    return this.lines.has(id);
  }
  /** A kept line, for a peer that grafts. */
  graft(id: string): GraftResult<string> {
    const t = this.lines.get(id);
    return t === undefined ? { error: "unknown" } : { ok: t };
  }
  /** No anti-entropy for chat. */
  exchange(): "ignore" {
    return "ignore";
  }
}
