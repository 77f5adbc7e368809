/**
 * The messages of data publishers over a partial view (HyParView), and their
 * shape checks. Two kinds travel:
 *
 * - **pushes**, broadcast through a Plumtree overlay of their own (one tree
 *   per origin node): an origin's update (`u`), its full data after it refuted
 *   a death notice (`a`), a death notice for an origin (`x`), an origin's
 *   goodbye (`b`). Their id is `[scope, kind, origin, epoch, n]`: `n` is the
 *   sequence of an update and the life of the other kinds.
 * - **anti-entropy**, sent to one neighbour: a digest (two 32-bit hashes of
 *   every live origin's epoch, life and sequence), the hashes of its 64
 *   buckets when they differ, the entries of the buckets that differ, and the
 *   full data of the origins the neighbour lacks or holds older.
 *
 * Each value travels once per version the cluster runs: a body is
 * `[version, plain, value]`, `plain` 1 when the value is the plain messages a
 * module of an older protocol reads (`translateMessage`).
 *
 * @module
 */

import { isVersion, type Version } from "./module.ts";

/** The kinds of push. */
export type PushKind = "u" | "a" | "x" | "b";

/** A push's id: scope, kind, origin, the origin's epoch, and its sequence (`u`) or life. */
export type PushId = [scope: string, kind: PushKind, origin: string, epoch: number, n: number];

/** A value for the nodes of one version: `[version, plain, value]`. */
export type Body = [version: Version, plain: 0 | 1, value: unknown];

/**
 * A push's payload: `[originVersion, n, bodies]`, `n` the origin's life for an
 * update, its sequence for full data; `[]` for a death notice and a goodbye.
 */
export type PushPayload = [version: Version, n: number, bodies: Body[]] | [];

/** What one node knows of one origin: `[origin, epoch, life, seq, status, version]`. */
export type Entry = [
  origin: string,
  epoch: number,
  life: number,
  seq: number,
  /** 0 alive, 1 down (its data still shown for `downGraceMs`), 2 removed. */
  status: 0 | 1 | 2,
  version: Version,
];

/** An origin's full data for one neighbour: `[origin, epoch, life, seq, originVersion, plain, data]`. */
export type FullItem = [
  origin: string,
  epoch: number,
  life: number,
  seq: number,
  version: Version,
  plain: 0 | 1,
  data: unknown,
];

/** Anti-entropy between neighbours; the third element is the sender's module version. */
export type AntiEntropy =
  /** Digest: the two hashes of every live origin. */
  | ["d", scope: string, version: Version, h1: number, h2: number]
  /** The hashes of the 64 buckets (two per bucket), when the digests differ. */
  | ["h", scope: string, version: Version, hashes: number[]]
  /**
   * The entries of buckets `idxs`; `reply` 0 asks for the other side's entries
   * of the same buckets; `rest`: buckets still to compare after these.
   */
  | [
    "s",
    scope: string,
    version: Version,
    reply: 0 | 1,
    idxs: number[],
    entries: Entry[],
    rest: number[],
  ]
  /** Full data of origins the receiver lacks or holds older. */
  | ["f", scope: string, version: Version, items: FullItem[]]
  /** The sender's goodbye for its epoch (it leaves): the receiver passes it on. */
  | ["b", scope: string, version: Version, epoch: number];

/** Buckets of the digest. */
export const BUCKETS = 64;

/** Life of a goodbye: greater than any life an origin takes. */
export const BYE_LIFE: number = Number.MAX_SAFE_INTEGER;

const KINDS = new Set(["u", "a", "x", "b"]);

const isCount = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0;
const isBucket = (v: unknown) =>
  Number.isInteger(v) && (v as number) >= 0 && (v as number) < BUCKETS;

/** True for a push id. */
export function isPushId(v: unknown): v is PushId {
  return Array.isArray(v) && v.length === 5 && typeof v[0] === "string" && KINDS.has(v[1]) &&
    typeof v[2] === "string" && v[2].length > 0 && typeof v[3] === "number" &&
    Number.isFinite(v[3]) && isCount(v[4]);
}

function isBody(v: unknown): v is Body {
  return Array.isArray(v) && v.length === 3 && isVersion(v[0]) && (v[1] === 0 || v[1] === 1) &&
    (v[1] === 0 || Array.isArray(v[2]));
}

/** True for the payload of a push of `kind`. */
export function isPushPayload(kind: PushKind, v: unknown): v is PushPayload {
  if (!Array.isArray(v)) return false;
  if (kind === "x" || kind === "b") return v.length === 0;
  return v.length === 3 && isVersion(v[0]) && isCount(v[1]) && Array.isArray(v[2]) &&
    v[2].every(isBody);
}

function isEntry(v: unknown): v is Entry {
  return Array.isArray(v) && v.length === 6 && typeof v[0] === "string" && v[0].length > 0 &&
    typeof v[1] === "number" && Number.isFinite(v[1]) && isCount(v[2]) && isCount(v[3]) &&
    (v[4] === 0 || v[4] === 1 || v[4] === 2) && isVersion(v[5]);
}

function isFullItem(v: unknown): v is FullItem {
  return Array.isArray(v) && v.length === 7 && typeof v[0] === "string" && v[0].length > 0 &&
    typeof v[1] === "number" && Number.isFinite(v[1]) && isCount(v[2]) && isCount(v[3]) &&
    isVersion(v[4]) && (v[5] === 0 || (v[5] === 1 && Array.isArray(v[6])));
}

/** True for an anti-entropy message. */
export function isAntiEntropy(v: unknown): v is AntiEntropy {
  if (!Array.isArray(v) || typeof v[1] !== "string" || !isVersion(v[2])) return false;
  switch (v[0]) {
    case "d":
      return v.length === 5 && Number.isInteger(v[3]) && Number.isInteger(v[4]);
    case "h":
      return v.length === 4 && Array.isArray(v[3]) && v[3].length === 2 * BUCKETS &&
        v[3].every(Number.isInteger);
    case "s":
      return v.length === 7 && (v[3] === 0 || v[3] === 1) && Array.isArray(v[4]) &&
        v[4].every(isBucket) && Array.isArray(v[5]) && v[5].every(isEntry) &&
        Array.isArray(v[6]) && v[6].every(isBucket);
    case "f":
      return v.length === 4 && Array.isArray(v[3]) && v[3].every(isFullItem);
    case "b":
      return v.length === 4 && typeof v[3] === "number" && Number.isFinite(v[3]);
  }
  return false;
}

/** FNV-1a over `s`, from `h`. */
export function fnv(s: string, h = 0x811c9dc5): number {
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** The bucket of an origin. */
export function bucketOf(origin: string): number {
  return fnv(origin) % BUCKETS;
}

/**
 * The digest hashes of `[origin, epoch, life, seq]` (two independent 32-bit
 * hashes; XOR-combined they compare whole tables).
 */
export function entryHash(
  origin: string,
  epoch: number,
  life: number,
  seq: number,
): [number, number] {
  const key = `${origin}\u0000${epoch}\u0000${life}\u0000${seq}`;
  return [fnv(key), fnv(key, 0x5bd1e995)];
}
