import assert from "node:assert/strict";
import { compareBytes, decodeKey, encodeKey, OrderStamp, StorageError } from "./mod.ts";
import { testStorage } from "../testing.ts";
import { FoundationDbStorage, packOrderedKey, packValue, unpackValue } from "./foundationdb.ts";

const clusterFile = Deno.env.get("FDB_CLUSTER_FILE");

// The conformance suite runs against a real cluster only; without one it is skipped, with the reason.
testStorage("foundationdb", {
  open: () => FoundationDbStorage.open({ prefix: ["murmur-test", crypto.randomUUID()] }),
  ...(clusterFile
    ? {}
    : { skip: "FDB_CLUSTER_FILE is not set (no FoundationDB cluster on this machine)" }),
});

Deno.test("foundationdb layout: values carry a versionstamp placeholder and kind", () => {
  const packed = packValue(new Uint8Array([1, 2, 3]));
  // 10-byte placeholder, kind 0, payload, then the little-endian offset 0 of the placeholder.
  assert.deepEqual([...packed], [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 0, 0, 0, 0]);
  // What FoundationDB stores: the placeholder filled in, the offset suffix consumed.
  const stored = packed.slice(0, -4);
  stored.set([0, 0, 0, 0, 0, 0, 0, 0x12, 0x34, 0x56]);
  assert.deepEqual(unpackValue(stored), {
    versionstamp: "00000000000000123456",
    value: new Uint8Array([1, 2, 3]),
  });
  const counter = packValue(300n).slice(0, -4);
  assert.equal(unpackValue(counter).value, 300n);
});

Deno.test("foundationdb layout: ordered keys decode as OrderStamps in commit order", () => {
  const prefix = encodeKey(["q"]);
  const k0 = packOrderedKey(prefix, 0), k1 = packOrderedKey(prefix, 1);
  const offset = new DataView(k0.buffer).getUint32(k0.length - 4, true);
  assert.equal(offset, prefix.length + 1, "the placeholder follows the prefix and the stamp tag");
  // Simulate FoundationDB filling in two commits' versionstamps.
  const fill = (k: Uint8Array, commit: number) => {
    const b = k.slice(0, -4);
    new DataView(b.buffer).setUint32(offset + 6, commit);
    return b;
  };
  const a = decodeKey(fill(k1, 1)), b = decodeKey(fill(k0, 2));
  assert.ok(a[1] instanceof OrderStamp && b[1] instanceof OrderStamp);
  assert.deepEqual(decodeKey(encodeKey(a)), a, "stamps round-trip through the key codec");
  assert.equal(
    compareBytes(encodeKey(a), encodeKey(b)),
    -1,
    "an earlier commit sorts first, whatever its order index",
  );
});

Deno.test({
  name: "foundationdb: a missing client library or cluster file is a clear StorageError",
  ignore: clusterFile !== undefined,
  fn: async () => {
    await assert.rejects(
      () => FoundationDbStorage.open({ clusterFile: "/nonexistent/fdb.cluster" }),
      (e) => e instanceof StorageError && /cluster file not found/.test(e.message),
    );
    await assert.rejects(
      () => FoundationDbStorage.open(),
      (e) => e instanceof StorageError && /libfdb_c|FoundationDB/.test(e.message),
    );
  },
});
