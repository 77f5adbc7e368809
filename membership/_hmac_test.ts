import assert from "node:assert/strict";
import { createHash, createHmac } from "node:crypto";
import { equalBytes, hmacSha256, sha256 } from "./_hmac.ts";

const hex = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
const utf8 = (s: string) => new TextEncoder().encode(s);

Deno.test("hmac: SHA-256 and HMAC-SHA-256 match the RFC vectors and node:crypto at every length around the block", () => {
  assert.equal(
    hex(sha256(utf8("abc"))),
    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
  );
  // RFC 4231 test case 2.
  assert.equal(
    hex(hmacSha256(utf8("Jefe"), utf8("what do ya want for nothing?"))),
    "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
  );
  for (let n = 0; n < 200; n++) {
    const data = new Uint8Array(n).map((_, i) => (i * 7 + n) & 0xff);
    assert.equal(hex(sha256(data)), createHash("sha256").update(data).digest("hex"), `length ${n}`);
    const key = data.subarray(0, n % 150);
    assert.equal(
      hex(hmacSha256(key, data)),
      createHmac("sha256", key).update(data).digest("hex"),
      `key ${key.length}`,
    );
  }
});

Deno.test("hmac: equalBytes compares contents and lengths", () => {
  assert.equal(equalBytes(new Uint8Array([1, 2]), new Uint8Array([1, 2])), true);
  assert.equal(equalBytes(new Uint8Array([1, 2]), new Uint8Array([1, 3])), false);
  assert.equal(equalBytes(new Uint8Array([1]), new Uint8Array([1, 2])), false);
});
