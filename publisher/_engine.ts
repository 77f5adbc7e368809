// What a data publisher runs on: the full-mesh engine (OTP's protocol) or the
// overlay engine (pushes through Plumtree, anti-entropy with neighbours).
// Module-private: `DataPublisher` is the face of both.

import type { Listener, Version } from "./module.ts";

/** Counters of a {@linkcode DataPublisher}. */
export interface PublisherStats {
  /** Updates applied on this node (`update`). */
  localUpdates: number;
  /** Updates applied from peers. */
  remoteUpdates: number;
  /** Full local data received from peers (discovery, resync; overlay: refutations, anti-entropy). */
  fullSyncs: number;
  /** Peer updates dropped: unknown peer or instance, or out of sequence (overlay: malformed, or no body for this version). */
  dropped: number;
  /**
   * Full local data asked of peers again (a gap in their sequence); at most
   * one per peer per `syncIntervalMs`. Overlay: anti-entropy exchanges that
   * found a difference.
   */
  resyncs: number;
  /** Peers seen go down (overlay: deaths learnt, from this node's detection, notices or neighbours). */
  deaths: number;
  /** Overlay: death notices about this node that it refuted (0 under full mesh). */
  refutations: number;
}

/** One scope's publisher, whatever carries its messages. */
export interface PublisherEngine<Local, Update, View, Sub, SubResult> {
  readonly view: View;
  readonly localData: Local;
  peers(): { node: string; version: Version }[];
  stats(): PublisherStats;
  /** Applies a local update, all or nothing (throws with nothing changed). */
  update(update: Update): void;
  subscribe(sub: Sub, listener: Listener): { ref: number; result: SubResult };
  unsubscribe(ref: number): boolean;
  message(msg: unknown): void;
  close(): Promise<void>;
}
