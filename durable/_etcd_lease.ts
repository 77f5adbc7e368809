/**
 * The etcd lease an {@linkcode EtcdStorage}'s commit ids are written under:
 * granted on first use, kept alive (at a third of its TTL) while the storage
 * is open, revoked when it closes. A lease that expired (a long pause, a
 * partition) is granted anew on the next commit. Module-private.
 *
 * @module
 */

import type { EtcdClient } from "./_etcd_client.ts";

/** One storage handle's commit-id lease. */
export class CommitIdLease {
  readonly #client: EtcdClient;
  readonly #ttlSec: number;
  readonly #closing: AbortSignal;
  #lease: Promise<string> | undefined;
  #keepAliveTimer: ReturnType<typeof setTimeout> | undefined;
  #keepAlive: Promise<void> = Promise.resolve();

  /** `closing`: aborted when the storage closes (keep-alives stop). */
  constructor(client: EtcdClient, ttlSec: number, closing: AbortSignal) {
    this.#client = client;
    this.#ttlSec = ttlSec;
    this.#closing = closing;
  }

  /** The lease's id: granted on first use (a failed grant is tried again next time). */
  id(): Promise<string> {
    this.#lease ??= (async () => {
      const res = await this.#client.call("/v3/lease/grant", { TTL: String(this.#ttlSec) });
      const id = String(res.ID);
      this.#scheduleKeepAlive(id);
      return id;
    })().catch((e) => {
      this.#lease = undefined;
      throw e;
    });
    return this.#lease;
  }

  /** etcd said the lease is gone: the next `id()` grants a new one. */
  expired(): void {
    this.#lease = undefined;
  }

  /** Stops the keep-alives and revokes the lease (within 1 s; else it expires on its own). */
  async close(): Promise<void> {
    const lease = this.#lease;
    if (this.#keepAliveTimer !== undefined) clearTimeout(this.#keepAliveTimer);
    this.#keepAliveTimer = undefined;
    await this.#keepAlive;
    if (lease === undefined) return;
    try {
      const id = await lease;
      await this.#client.once("/v3/lease/revoke", { ID: id }, 1000);
    } catch { /* the lease expires on its own */ }
  }

  #scheduleKeepAlive(id: string): void {
    if (this.#keepAliveTimer !== undefined) clearTimeout(this.#keepAliveTimer);
    this.#keepAliveTimer = setTimeout(() => {
      this.#keepAliveTimer = undefined;
      this.#keepAlive = (async () => {
        try {
          const res = await this.#client.once("/v3/lease/keepalive", { ID: id });
          if (res.result?.TTL === undefined || res.result.TTL === "0") {
            this.#lease = undefined; // expired: the next commit grants a new one
            return;
          }
        } catch {
          this.#client.rotate();
        }
        if (!this.#closing.aborted) this.#scheduleKeepAlive(id);
      })();
    }, (this.#ttlSec * 1000) / 3);
  }
}
