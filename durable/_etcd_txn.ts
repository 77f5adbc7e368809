// The transactions of the etcd backend, planned without I/O: stored values
// (a kind byte, then bytes or a counter), mutations coalesced into one write
// per key, and the compare-and-write transaction of one commit attempt, with
// the counters and sequences it depends on. Module-private.

import {
  type Check,
  type Key,
  type Mutation,
  StorageError,
  StorageLimitError,
  type Value,
} from "./storage.ts";
import { b64, CODE_INVALID_ARGUMENT, EtcdError, type Json, stampToRev } from "./_etcd_client.ts";

// Stored values: a kind byte, then the bytes or an 8-byte little-endian counter.
const KIND_BYTES = 0;
export const KIND_COUNTER = 1;
// Commit-id values: applied, or fenced (a lost attempt may never apply).
export const ID_APPLIED = 1;
export const ID_FENCED = 0;

export function packValue(v: Value): Uint8Array {
  if (typeof v === "bigint") {
    const out = new Uint8Array(9);
    out[0] = KIND_COUNTER;
    new DataView(out.buffer).setBigUint64(1, BigInt.asUintN(64, v), true);
    return out;
  }
  const out = new Uint8Array(v.length + 1);
  out[0] = KIND_BYTES;
  out.set(v, 1);
  return out;
}

export function unpackValue(b: Uint8Array): Value {
  if (b[0] === KIND_COUNTER && b.length === 9) {
    return new DataView(b.buffer, b.byteOffset).getBigUint64(1, true);
  }
  if (b[0] === KIND_BYTES) return b.slice(1);
  throw new StorageError("a stored value has an unknown kind (was it written by murmur?)");
}

export function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

export const hex = (b: Uint8Array) =>
  Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
export const META = 0xff;
export const utf8 = new TextEncoder();

/** A counter or sequence as last seen: its value and revision ("0": absent). */
export interface Known {
  value: bigint;
  rev: string;
}

/** One commit, coalesced into what etcd accepts (one write per key). */
export interface Plan {
  /** Final write of each key, in first-written order. */
  writes: Map<
    string,
    { key: Uint8Array; put?: Uint8Array | undefined; sum?: { base?: bigint; delta: bigint } }
  >;
  /** Ordered appends per prefix. */
  appends: Map<string, { prefix: Uint8Array; seqKey: Uint8Array; values: Uint8Array[] }>;
}

/** One attempt's transaction, and the counters and sequences it watches and writes. */
export interface TxnOf {
  txn: Json;
  watched: { key: Uint8Array; rev: string }[];
  written: { key: Uint8Array; value: bigint }[];
}

/** Coalesces mutations into one write per key (etcd refuses two writes of a key in a transaction). */
export function planCommit(
  mutations: readonly Mutation[],
  keyOf: (key: Key) => Uint8Array,
  meta: Uint8Array,
): Plan {
  const plan: Plan = { writes: new Map(), appends: new Map() };
  for (const m of mutations) {
    if (m.type === "appendOrdered") {
      const prefix = keyOf(m.prefix);
      const h = hex(prefix);
      let a = plan.appends.get(h);
      if (a === undefined) {
        a = { prefix, seqKey: concat(meta, utf8.encode("s"), prefix), values: [] };
        plan.appends.set(h, a);
      }
      a.values.push(m.value);
      continue;
    }
    const key = keyOf(m.key);
    const h = hex(key);
    const prev = plan.writes.get(h);
    if (m.type === "set") plan.writes.set(h, { key, put: packValue(m.value) });
    else if (m.type === "delete") plan.writes.set(h, { key });
    else if (prev === undefined) plan.writes.set(h, { key, sum: { delta: m.value } });
    else if (prev.sum !== undefined) prev.sum.delta += m.value;
    else if (prev.put === undefined) prev.sum = { base: 0n, delta: m.value }; // after a delete
    else if (prev.put[0] === KIND_COUNTER) {
      prev.sum = { base: unpackValue(prev.put) as bigint, delta: m.value };
      prev.put = undefined;
    } else throw new StorageError("sum on a key that does not hold a counter");
  }
  return plan;
}

/** The transaction of one attempt, and the counters and sequences it depends on. */
export function buildTxn(
  checks: readonly Check[],
  plan: Plan,
  idKey: Uint8Array,
  lease: string,
  o: {
    known: Map<string, Known>;
    keyOf: (key: Key) => Uint8Array;
    maxTxnOps: number;
    maxRequestBytes: number;
  },
): TxnOf {
  const compare: Json[] = checks.map((c) => ({
    key: b64(o.keyOf(c.key)),
    target: "MOD",
    result: "EQUAL",
    mod_revision: c.versionstamp === null ? "0" : stampToRev(c.versionstamp),
  }));
  const success: Json[] = [];
  const watched: { key: Uint8Array; rev: string }[] = [];
  const written: { key: Uint8Array; value: bigint }[] = [];
  let bytes = 256;
  const put = (key: Uint8Array, value: Uint8Array, withLease?: string) => {
    bytes += key.length + value.length + 24;
    success.push({
      request_put: {
        key: b64(key),
        value: b64(value),
        ...(withLease ? { lease: withLease } : {}),
      },
    });
  };
  const watch = (key: Uint8Array): Known => {
    const k = o.known.get(hex(key))!;
    watched.push({ key, rev: k.rev });
    compare.push({ key: b64(key), target: "MOD", result: "EQUAL", mod_revision: k.rev });
    return k;
  };
  for (const w of plan.writes.values()) {
    if (w.sum !== undefined) {
      const value = BigInt.asUintN(64, (w.sum.base ?? watch(w.key).value) + w.sum.delta);
      put(w.key, packValue(value));
      written.push({ key: w.key, value });
    } else if (w.put !== undefined) put(w.key, w.put);
    else {
      bytes += w.key.length + 16;
      success.push({ request_delete_range: { key: b64(w.key) } });
    }
  }
  for (const a of plan.appends.values()) {
    const seq = watch(a.seqKey).value + 1n;
    const stamp = new Uint8Array(13);
    stamp[0] = 0x33; // an OrderStamp key part: 10 bytes of sequence, 2 of order
    const v = new DataView(stamp.buffer);
    v.setBigUint64(3, seq);
    for (const [i, value] of a.values.entries()) {
      v.setUint16(11, i);
      put(concat(a.prefix, stamp), packValue(value));
    }
    put(a.seqKey, packValue(seq));
    written.push({ key: a.seqKey, value: seq });
  }
  put(idKey, new Uint8Array([ID_APPLIED]), lease);
  compare.push({ key: b64(idKey), target: "MOD", result: "EQUAL", mod_revision: "0" });
  for (const c of compare) bytes += c.key.length * 0.75 + 24;
  const failure = [idKey, ...watched.map((w) => w.key)].map((k) => {
    bytes += k.length + 16;
    return { request_range: { key: b64(k) } };
  });
  const max = o.maxTxnOps;
  if (success.length > max) {
    throw new StorageLimitError(
      "mutationsMax",
      success.length,
      max,
      "operations of one etcd transaction (--max-txn-ops): mutations, one per appended prefix, and the commit id",
    );
  }
  if (compare.length > max) {
    throw new StorageLimitError(
      "checksMax",
      compare.length,
      max,
      "compares of one etcd transaction (--max-txn-ops): checks, one per summed counter and appended prefix, and the commit id",
    );
  }
  if (bytes > o.maxRequestBytes - 1024) {
    throw new StorageLimitError(
      "commitBytesMax",
      Math.ceil(bytes),
      o.maxRequestBytes - 1024,
      "bytes of one etcd transaction request (--max-request-bytes)",
    );
  }
  return { txn: { compare, success, failure }, watched, written };
}

/** The error a failed etcd operation becomes: a named limit when etcd refused for size, else a StorageError. */
export function wrapError(
  e: unknown,
  what: string,
  closed: boolean,
  o: { maxTxnOps: number; maxRequestBytes: number },
): Error {
  if (e instanceof StorageError || e instanceof TypeError || e instanceof RangeError) return e;
  if (closed) return new StorageError("storage is closed", { cause: e });
  if (e instanceof EtcdError && e.code === CODE_INVALID_ARGUMENT) {
    if (/too many operations/.test(e.message)) {
      return new StorageLimitError(
        "mutationsMax",
        o.maxTxnOps + 1,
        o.maxTxnOps,
        `etcd refused the transaction (${e.message}); is the cluster's --max-txn-ops lower than maxTxnOps?`,
      );
    }
    if (/request is too large/.test(e.message)) {
      return new StorageLimitError(
        "commitBytesMax",
        o.maxRequestBytes + 1,
        o.maxRequestBytes,
        `etcd refused the request (${e.message}); is the cluster's --max-request-bytes lower than maxRequestBytes?`,
      );
    }
  }
  return new StorageError(`${what}: ${(e as Error)?.message ?? e}`, { cause: e });
}
