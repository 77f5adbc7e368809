import assert from "node:assert/strict";
import { decodeValue, encodeForWire, encodeValue } from "./codec.ts";

Deno.test("codec: encodings kept across many later encodes stay intact, small and large, as plain Uint8Arrays", () => {
  // Encodes share cbor-x's output buffer and continue after each other; a kept
  // encoding must never be overwritten, also when the buffer is replaced
  // (every ~8 KiB) or a value larger than the buffer is encoded.
  const values: unknown[] = [];
  for (let i = 0; i < 5000; i++) {
    values.push(
      i % 500 === 0
        ? { big: new Uint8Array(20_000).fill(i % 251), i }
        : [i, "m" + i, new Uint8Array(i % 200).fill(i % 256)],
    );
  }
  const kept = values.map((v, i) => (i % 2 === 0 ? encodeValue(v) : encodeForWire(v, "msg")));
  for (let i = 0; i < values.length; i++) {
    assert.equal(Object.getPrototypeOf(kept[i]), Uint8Array.prototype);
    assert.deepEqual(decodeValue(kept[i]!), values[i]);
  }
});
