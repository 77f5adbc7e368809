// The etcd v3 HTTP/JSON gateway as EtcdStorage uses it: requests with a
// per-attempt timeout, failover between endpoints within a deadline,
// authentication, and the classification of etcd's errors into "retry",
// "outcome unknown" and "definite". Module-private.

import { MurmurError } from "../base/errors.ts";

/** An error answered by etcd (or by its gateway): gRPC `code` and message. */
export class EtcdError extends MurmurError {
  /** The gRPC status code etcd answered (0 when the gateway gave none). */
  readonly code: number;
  /** The HTTP status. */
  readonly status: number;
  /** Creates the error. */
  constructor(message: string, code: number, status: number) {
    super(`etcd: ${message}`);
    this.code = code;
    this.status = status;
  }
}

// gRPC status codes etcd answers with.
export const CODE_INVALID_ARGUMENT = 3;
export const CODE_DEADLINE_EXCEEDED = 4;
export const CODE_NOT_FOUND = 5;
export const CODE_PERMISSION_DENIED = 7;
export const CODE_FAILED_PRECONDITION = 9;
export const CODE_OUT_OF_RANGE = 11;
export const CODE_UNAVAILABLE = 14;
export const CODE_UNAUTHENTICATED = 16;

/** What one failed attempt means for the operation. */
export type Failure =
  /** Nothing happened and retrying elsewhere may help (no leader, endpoint down before sending). */
  | "retry"
  /** The request may or may not have taken effect (a write whose answer was lost). */
  | "unknown"
  /** etcd refused it for good (bad argument, limits, permissions). */
  | "definite";

/** How an error of one attempt is classified. */
export function classify(e: unknown): Failure {
  if (e instanceof EtcdError) {
    if (e.code === CODE_UNAVAILABLE) {
      // "no leader" and "not capable" are refused before proposing; "leader changed" may have applied.
      return /no leader|not capable|too many requests/i.test(e.message) ? "retry" : "unknown";
    }
    if (e.code === CODE_DEADLINE_EXCEEDED) return "unknown";
    if (
      e.code === CODE_INVALID_ARGUMENT || e.code === CODE_PERMISSION_DENIED ||
      e.code === CODE_FAILED_PRECONDITION || e.code === CODE_OUT_OF_RANGE ||
      e.code === CODE_NOT_FOUND || e.code === CODE_UNAUTHENTICATED
    ) return "definite";
    return e.status >= 500 || e.status === 0 ? "unknown" : "definite";
  }
  // A network error or our own per-attempt timeout: the request may have reached etcd.
  return "unknown";
}

/** Settings of the client. */
export interface ClientSettings {
  endpoints: string[];
  requestTimeoutMs: number;
  retryDeadlineMs: number;
  username?: string;
  password?: string;
  httpClient?: Deno.HttpClient;
}

/** A JSON object as the gateway speaks it. */
// deno-lint-ignore no-explicit-any
export type Json = any;

/** Backoff between rounds over all endpoints. */
const BACKOFF_MS_MIN = 25;
const BACKOFF_MS_MAX = 1000;

export class EtcdClient {
  readonly #s: ClientSettings;
  readonly #closing: AbortSignal;
  #current = 0;
  #token: string | undefined;
  #authenticating: Promise<void> | undefined;

  constructor(settings: ClientSettings, closing: AbortSignal) {
    this.#s = settings;
    this.#closing = closing;
  }

  get endpoints(): readonly string[] {
    return this.#s.endpoints;
  }

  /** The endpoint requests go to now (they move on when it fails). */
  get current(): string {
    return this.#s.endpoints[this.#current]!;
  }

  /** Moves to the next endpoint. */
  rotate(): void {
    this.#current = (this.#current + 1) % this.#s.endpoints.length;
  }

  /**
   * One attempt at the current endpoint, bounded by `requestTimeoutMs`.
   * Throws EtcdError for etcd's answers, other errors for the network.
   */
  async once(path: string, body: Json, timeoutMs = this.#s.requestTimeoutMs): Promise<Json> {
    if (this.#s.username !== undefined && this.#token === undefined) await this.#authenticate();
    const ctl = new AbortController();
    const onClose = () => ctl.abort(this.#closing.reason);
    this.#closing.addEventListener("abort", onClose, { once: true });
    const timer = setTimeout(
      () => ctl.abort(new Error(`no answer from ${this.current} within ${timeoutMs} ms`)),
      timeoutMs,
    );
    try {
      const res = await fetch(this.current + path, {
        method: "POST",
        headers: this.#headers(),
        body: JSON.stringify(body),
        signal: ctl.signal,
        ...(this.#s.httpClient ? { client: this.#s.httpClient } : {}),
      });
      const text = await res.text();
      let json: Json;
      try {
        json = text === "" ? {} : JSON.parse(text);
      } catch {
        throw new EtcdError(`not JSON (HTTP ${res.status}): ${text.slice(0, 200)}`, 0, res.status);
      }
      if (!res.ok || json.error !== undefined) {
        const msg = String(json.message ?? json.error ?? `HTTP ${res.status}`);
        const err = new EtcdError(msg, Number(json.code ?? 0), res.status);
        if (this.#s.username !== undefined && isAuthExpired(err)) this.#token = undefined;
        throw err;
      }
      return json;
    } catch (e) {
      if (ctl.signal.aborted && !(e instanceof EtcdError)) throw ctl.signal.reason ?? e;
      throw e;
    } finally {
      clearTimeout(timer);
      this.#closing.removeEventListener("abort", onClose);
    }
  }

  /**
   * A request that changes nothing (or whose repetition is harmless): retried
   * on every endpoint until it succeeds, a definite error, or the deadline.
   */
  async call(path: string, body: Json, deadlineMs = this.#s.retryDeadlineMs): Promise<Json> {
    const deadline = performance.now() + deadlineMs;
    let last: unknown;
    for (let attempt = 0;; attempt++) {
      if (this.#closing.aborted) throw new EtcdError("storage is closed", 0, 0);
      try {
        return await this.once(path, body, this.#attemptMs(deadline));
      } catch (e) {
        last = e;
        if (
          e instanceof EtcdError && e.code === CODE_UNAUTHENTICATED && this.#token === undefined
        ) {
          // The token expired: authenticate again, then retry.
        } else if (classify(e) === "definite") throw e;
        this.rotate();
      }
      if (!await this.pause(attempt, deadline)) break;
    }
    throw new EtcdError(
      `no endpoint answered within ${deadlineMs} ms (${
        this.#s.endpoints.join(", ")
      }); last error: ${(last as Error)?.message ?? last}`,
      CODE_UNAVAILABLE,
      0,
    );
  }

  /** The per-attempt timeout, shortened near the deadline. */
  #attemptMs(deadline: number): number {
    return Math.max(50, Math.min(this.#s.requestTimeoutMs, deadline - performance.now()));
  }

  /** Waits before the next attempt (longer after each round over all endpoints); false past the deadline. */
  async pause(attempt: number, deadline: number): Promise<boolean> {
    const n = this.#s.endpoints.length;
    const round = Math.floor(attempt / n);
    const ms = (attempt + 1) % n === 0
      ? Math.min(BACKOFF_MS_MAX, BACKOFF_MS_MIN * 2 ** round) * (0.5 + Math.random() / 2)
      : 0;
    if (performance.now() + ms >= deadline) return false;
    if (ms > 0) await this.sleep(ms);
    return !this.#closing.aborted;
  }

  /** Sleeps, waking early when the storage closes. */
  sleep(ms: number): Promise<void> {
    return sleep(ms, this.#closing);
  }

  #headers(): Record<string, string> {
    const h: Record<string, string> = { "content-type": "application/json" };
    if (this.#token !== undefined) h["authorization"] = this.#token;
    return h;
  }

  /** Opens a streaming request (a watch) at the current endpoint. */
  async stream(path: string, body: Json, signal: AbortSignal): Promise<Response> {
    if (this.#s.username !== undefined && this.#token === undefined) await this.#authenticate();
    const res = await fetch(this.current + path, {
      method: "POST",
      headers: this.#headers(),
      body: JSON.stringify(body),
      signal,
      ...(this.#s.httpClient ? { client: this.#s.httpClient } : {}),
    });
    if (!res.ok) {
      const text = await res.text();
      throw new EtcdError(
        `watch refused (HTTP ${res.status}): ${text.slice(0, 200)}`,
        0,
        res.status,
      );
    }
    return res;
  }

  #authenticate(): Promise<void> {
    this.#authenticating ??= (async () => {
      const body = { name: this.#s.username, password: this.#s.password ?? "" };
      const deadline = performance.now() + this.#s.retryDeadlineMs;
      for (let attempt = 0;; attempt++) {
        const ctl = new AbortController();
        const timer = setTimeout(() => ctl.abort(), this.#attemptMs(deadline));
        try {
          const res = await fetch(this.current + "/v3/auth/authenticate", {
            method: "POST",
            headers: { "content-type": "application/json" },
            body: JSON.stringify(body),
            signal: AbortSignal.any([ctl.signal, this.#closing]),
            ...(this.#s.httpClient ? { client: this.#s.httpClient } : {}),
          });
          const json = await res.json();
          if (!res.ok || typeof json.token !== "string") {
            throw new EtcdError(
              `authentication as "${this.#s.username}" failed: ${json.message ?? res.status}`,
              Number(json.code ?? 0),
              res.status,
            );
          }
          this.#token = json.token;
          return;
        } catch (e) {
          if (e instanceof EtcdError && e.status < 500) throw e;
          this.rotate();
          if (!await this.pause(attempt, deadline)) throw e;
        } finally {
          clearTimeout(timer);
        }
      }
    })().finally(() => (this.#authenticating = undefined));
    return this.#authenticating;
  }
}

function isAuthExpired(e: EtcdError): boolean {
  return e.code === CODE_UNAUTHENTICATED || /invalid auth token/i.test(e.message);
}

/** Sleeps `ms`, or less when `signal` aborts (at once when it already has). */
export function sleep(ms: number, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
  });
}

// ----------------------------------------------------------------- encoding

/** Base64 of bytes, as the gateway wants `bytes` fields. */
export function b64(bytes: Uint8Array): string {
  let s = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(s);
}

/** Bytes of a base64 `bytes` field (absent: empty). */
export function unb64(s: string | undefined): Uint8Array {
  if (s === undefined || s === "") return new Uint8Array(0);
  const bin = atob(s);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

/** A revision (an int64 as a JSON string) as a 20-hex-digit versionstamp. */
export function revToStamp(rev: string | number | undefined): string {
  return BigInt(rev ?? 0).toString(16).padStart(20, "0");
}

/** A versionstamp back to the decimal revision etcd compares with. */
export function stampToRev(stamp: string): string {
  return BigInt("0x" + stamp).toString();
}

/** The key after every key that starts with `prefix` (etcd's range_end for a prefix). */
export function prefixEnd(prefix: Uint8Array): Uint8Array {
  const end = prefix.slice();
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i]! < 0xff) {
      end[i]!++;
      return end.slice(0, i + 1);
    }
  }
  return new Uint8Array([0]); // every key
}
